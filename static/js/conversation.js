// The conversation pane: the history (keyset pages as you scroll up, days separated), live
// messages with their delivery status, the composer and the chat's actions.

import { clientId } from "./api.js";
import { fillAvatar } from "./avatar.js";
import { byId, el, fromTemplate, icon } from "./dom.js";
import { clock, contactName, dayKey, dayLabel, fileSize, fullTime, parseTime, providerName } from "./format.js";

const PAGE = 50;
// Load older messages when the history is scrolled this close to its top.
const TOP_MARGIN_PX = 160;
// Within this distance of the bottom the pane follows new messages.
const STICK_PX = 80;
const URL_PATTERN = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]}]/g;
const STATUS_LABELS = {
  pending: "Sending…", sent: "Sent", delivered: "Delivered", read: "Read", failed: "Not delivered",
};
const STATUS_ICONS = { pending: "clock", sent: "check", delivered: "check2", read: "check2", failed: "alert" };

export class Conversation {
  constructor({ store, api, toast, onClosed, onOpened }) {
    this.store = store;
    this.api = api;
    this.toast = toast;
    this.onClosed = onClosed;
    this.onOpened = onOpened;
    this.chat = null;
    this.items = new Map();
    this.nodes = new Map();
    this.hasMore = false;
    this.loading = false;
    this.early = null;
    this.file = null;
    this.generation = 0;
    this.readTimer = null;
    this.dom = {
      root: byId("conv"),
      placeholder: byId("conv-placeholder"),
      name: byId("conv-name"),
      sub: byId("conv-sub"),
      avatar: document.querySelector(".conv-avatar"),
      actions: byId("conv-actions"),
      messages: byId("messages"),
      list: byId("message-list"),
      history: byId("history-status"),
      composer: byId("composer"),
      text: byId("composer-text"),
      send: byId("composer-send"),
      attach: byId("composer-attach"),
      fileInput: byId("composer-input-file"),
      fileChip: byId("composer-file"),
      hint: byId("composer-hint"),
    };
    this.bindComposer();
    // Whether the pane follows the newest message (it does until the agent scrolls up).
    this.stick = true;
    this.dom.messages.addEventListener("scroll", () => {
      const box = this.dom.messages;
      this.stick = box.scrollHeight - box.scrollTop - box.clientHeight < STICK_PX;
      this.maybeLoadOlder();
    });
    byId("conv-back").addEventListener("click", () => this.onClosed());
    store.addEventListener("chat", (event) => this.chatChanged(event.detail));
    store.addEventListener("message", (event) => this.messageEvent(event.detail));
    document.addEventListener("visibilitychange", () => this.markReadSoon());
    window.addEventListener("focus", () => this.markReadSoon());
  }

  get chatId() {
    return this.chat ? this.chat.id : null;
  }

  /** Open a chat: its newest page, its actions, and mark it read. */
  async open(chat) {
    const generation = ++this.generation;
    this.chat = chat;
    this.items.clear();
    this.nodes.clear();
    this.dom.list.replaceChildren();
    this.hasMore = false;
    this.stick = true;
    this.early = [];
    this.clearFile();
    this.dom.text.value = "";
    this.autosize();
    this.dom.placeholder.hidden = true;
    this.dom.root.hidden = false;
    this.dom.root.dataset.chatId = String(chat.id);
    this.dom.history.textContent = "Loading…";
    this.renderHead();
    this.renderComposer();
    this.loadActions();
    this.onOpened(chat);
    this.markRead();
    this.loading = true;
    try {
      const page = await this.api.get(`/api/chats/${chat.id}/messages?limit=${PAGE}`);
      if (generation !== this.generation) return;
      this.hasMore = page.has_more;
      for (const message of page.messages) this.merge(message, false);
      const early = this.early;
      this.early = null;
      for (const message of early) this.merge(message, true);
      this.render({ toBottom: true });
    } catch (err) {
      if (generation !== this.generation) return;
      this.early = null;
      this.dom.history.textContent = "The conversation could not be loaded.";
      return;
    } finally {
      if (generation === this.generation) this.loading = false;
    }
    if (window.matchMedia("(pointer: fine)").matches) this.dom.text.focus({ preventScroll: true });
    this.maybeLoadOlder();
  }

  close() {
    this.generation++;
    this.chat = null;
    this.dom.root.hidden = true;
    this.dom.placeholder.hidden = false;
    delete this.dom.root.dataset.chatId;
  }

  // ---- live changes

  chatChanged({ chat, prev, gone }) {
    if (!this.chat || chat.id !== this.chat.id) return;
    this.chat = chat;
    this.renderHead();
    this.renderComposer(gone);
    if (!prev || prev.status !== chat.status || prev.operator_id !== chat.operator_id || prev.queue_id !== chat.queue_id) {
      this.loadActions();
    }
    if (chat.unread > 0) this.markReadSoon();
  }

  messageEvent({ message }) {
    if (!this.chat || message.chat_id !== this.chat.id) return;
    if (this.early) {
      this.early.push(message); // the first page is on its way: apply after it
      return;
    }
    // An update to a message above the loaded window is shown when that page is loaded.
    const oldest = this.oldestId();
    if (this.hasMore && oldest !== null && message.id < oldest) return;
    this.merge(message, true);
    this.render({});
  }

  markReadSoon() {
    if (!this.chat || document.visibilityState !== "visible") return;
    const chat = this.store.chats.get(this.chat.id);
    if (!chat || !(chat.unread > 0)) return;
    // New messages are read while the agent looks at their own (or a waiting) chat; an admin
    // looking in on a colleague's chat leaves them unread for the colleague.
    if (chat.operator_id && chat.operator_id !== this.store.me.id) return;
    clearTimeout(this.readTimer);
    this.readTimer = setTimeout(() => this.markRead(), 300);
  }

  async markRead() {
    if (!this.chat) return;
    const id = this.chat.id;
    try {
      const counts = await this.api.post(`/api/chats/${id}/read`);
      if (counts) this.store.setUnread(counts);
    } catch (err) {
      if (err.status !== 404) console.warn("mark read failed", err);
    }
  }

  // ---- messages

  oldestId() {
    let oldest = null;
    for (const message of this.items.values()) if (message.id && (oldest === null || message.id < oldest)) oldest = message.id;
    return oldest;
  }

  /** Take in a message; an event (authoritative) replaces what is there, a page only fills gaps. */
  merge(message, authoritative) {
    if (message.client_id) {
      const local = this.items.get(`c:${message.client_id}`);
      if (local) {
        this.items.delete(`c:${message.client_id}`);
        const node = this.nodes.get(`c:${message.client_id}`);
        if (node) {
          this.nodes.delete(`c:${message.client_id}`);
          this.nodes.set(`m:${message.id}`, node);
        }
      }
    }
    const key = `m:${message.id}`;
    if (authoritative || !this.items.has(key)) this.items.set(key, message);
  }

  ordered() {
    const sent = [];
    const local = [];
    for (const [key, message] of this.items) (message.id ? sent : local).push([key, message]);
    sent.sort((a, b) => a[1].id - b[1].id);
    return sent.concat(local);
  }

  render({ toBottom = false, keepTop = false }) {
    const box = this.dom.messages;
    const oldHeight = box.scrollHeight;
    const oldTop = box.scrollTop;
    const children = [];
    let lastDay = null;
    let lastAuthor = null;
    for (const [key, message] of this.ordered()) {
      const time = parseTime(message.created_at) || new Date();
      const day = dayKey(time);
      if (day !== lastDay) {
        const sep = fromTemplate("tpl-day");
        sep.firstElementChild.textContent = dayLabel(time);
        children.push(sep);
        lastDay = day;
        lastAuthor = null;
      }
      const author = `${message.direction}:${message.author && message.author.type}:${message.author && message.author.id}`;
      const node = this.messageNode(key, message);
      node.classList.toggle("is-continued", author === lastAuthor);
      lastAuthor = author;
      children.push(node);
    }
    this.dom.list.replaceChildren(...children);
    this.dom.history.textContent = this.hasMore ? "" : this.items.size ? "This is the start of the conversation." : "No messages yet.";
    this.dom.history.classList.toggle("is-start", !this.hasMore);
    if (toBottom || (this.stick && !keepTop)) this.toBottom();
    else if (keepTop) box.scrollTop = oldTop + (box.scrollHeight - oldHeight);
  }

  toBottom() {
    const box = this.dom.messages;
    box.scrollTop = box.scrollHeight;
    this.stick = true;
  }

  /** Keep the newest message in view when a picture or video above it gets its size. */
  followResize(node) {
    const follow = () => { if (this.stick) this.toBottom(); };
    node.addEventListener("load", follow, { once: true });
    node.addEventListener("loadedmetadata", follow, { once: true });
  }

  messageNode(key, message) {
    const signature = JSON.stringify([message.text, message.status, message.error, message.edited_at,
      (message.attachments || []).map((a) => [a.id, a.ready, a.url, a.error])]);
    const cached = this.nodes.get(key);
    if (cached && cached.signature === signature) return cached.node;
    const node = this.buildMessage(message);
    this.nodes.set(key, { node, signature });
    return node;
  }

  buildMessage(message) {
    const node = fromTemplate("tpl-message");
    const outgoing = message.direction === "out";
    const system = message.author && message.author.type === "system";
    node.classList.add(system ? "msg-system" : outgoing ? "msg-out" : "msg-in");
    if (message.id) node.dataset.id = String(message.id);
    if (message.client_id) node.dataset.clientId = message.client_id;
    node.dataset.status = message.status || "";

    const author = node.querySelector(".msg-author");
    const authorName = message.author && message.author.name;
    const showAuthor = outgoing ? authorName && message.author.id !== this.store.me.id
      : this.chat && this.chat.title && authorName;
    author.textContent = showAuthor ? authorName : "";
    author.hidden = !showAuthor;

    const attachments = node.querySelector(".msg-attachments");
    for (const attachment of message.attachments || []) attachments.append(this.attachmentNode(attachment));
    attachments.hidden = !(message.attachments || []).length;

    const text = node.querySelector(".msg-text");
    appendLinkified(text, message.text || "");
    text.hidden = !message.text;

    const time = node.querySelector(".msg-time");
    time.textContent = clock(message.created_at);
    time.dateTime = message.created_at || "";
    time.title = fullTime(message.created_at);
    node.querySelector(".msg-edited").hidden = !message.edited_at;
    const status = node.querySelector(".msg-status");
    if (outgoing && message.status) {
      status.append(icon(STATUS_ICONS[message.status] || "check", "icon icon-xs"));
      status.title = STATUS_LABELS[message.status] || message.status;
      status.dataset.status = message.status;
      status.setAttribute("aria-label", status.title);
    }
    if (outgoing && message.status === "failed") {
      const failure = node.querySelector(".msg-failure");
      failure.hidden = false;
      failure.querySelector(".msg-failure-text").textContent =
        `Not delivered: ${message.error || "the messenger refused the message"}.`;
      failure.querySelector(".msg-retry").addEventListener("click", () => this.retry(message));
    }
    return node;
  }

  attachmentNode(attachment) {
    const kind = attachment.kind;
    const name = attachment.file_name || "";
    const meta = attachment.meta || {};
    if (kind === "location") {
      const lat = Number(meta.latitude);
      const lon = Number(meta.longitude);
      const label = Number.isFinite(lat) && Number.isFinite(lon) ? `${lat.toFixed(5)}, ${lon.toFixed(5)}` : "Location";
      const link = el("a", { class: "att att-file", target: "_blank", rel: "noopener noreferrer",
        href: Number.isFinite(lat) && Number.isFinite(lon)
          ? `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=16/${lat}/${lon}` : undefined },
      icon("pin"), el("span", { class: "att-name", text: label }));
      return link;
    }
    if (kind === "contact") {
      const who = [meta.first_name, meta.last_name].filter(Boolean).join(" ") || "Shared contact";
      return el("div", { class: "att att-file" }, icon("user"),
        el("span", { class: "att-name", text: who }), el("span", { class: "att-size", text: meta.phone_number || "" }));
    }
    if (!attachment.url) {
      const label = attachment.error ? `${labelOf(kind)} is not available` : `Receiving ${labelOf(kind).toLowerCase()}…`;
      return el("div", { class: `att att-pending${attachment.error ? " is-error" : ""}` },
        icon(attachment.error ? "alert" : "clock"), el("span", { class: "att-name", text: name || label }),
        el("span", { class: "att-size", text: name ? label : "" }));
    }
    if (kind === "image" || kind === "sticker") {
      const img = el("img", { alt: name || labelOf(kind), loading: "lazy" });
      this.followResize(img);
      const link = el("a", { class: `att att-image${kind === "sticker" ? " is-sticker" : ""}`, target: "_blank",
        rel: "noopener noreferrer", title: name || "Open the picture" }, img);
      this.api.fileUrl(attachment.url).then((url) => { img.src = url; link.href = url; }, () => img.remove());
      return link;
    }
    if (kind === "video" || kind === "audio") {
      const media = el(kind, { controls: true, preload: "metadata", class: `att-${kind}` });
      this.followResize(media);
      this.api.fileUrl(attachment.url).then((url) => { media.src = url; }, () => {});
      const box = el("div", { class: `att att-media att-media-${kind}` }, media);
      if (name) box.append(el("span", { class: "att-caption", text: name }));
      return box;
    }
    const link = el("a", { class: "att att-file", download: name || "file", title: `Download ${name || "the file"}` },
      icon("file"), el("span", { class: "att-name", text: name || "File" }),
      el("span", { class: "att-size", text: fileSize(attachment.size) }));
    if (this.api.mode === "token") {
      link.href = "#";
      link.addEventListener("click", async (event) => {
        if (link.dataset.ready) return;
        event.preventDefault();
        try {
          link.href = await this.api.fileUrl(attachment.url);
          link.dataset.ready = "1";
          link.click();
        } catch (err) {
          this.toast("The file could not be downloaded.", "error");
        }
      });
    } else {
      link.href = attachment.url;
    }
    return link;
  }

  async maybeLoadOlder() {
    if (!this.chat || !this.hasMore || this.loading) return;
    if (this.dom.messages.scrollTop > TOP_MARGIN_PX) return;
    const generation = this.generation;
    const oldest = this.oldestId();
    if (oldest === null) return;
    this.loading = true;
    this.dom.history.textContent = "Loading earlier messages…";
    try {
      const page = await this.api.get(`/api/chats/${this.chat.id}/messages?before=${oldest}&limit=${PAGE}`);
      if (generation !== this.generation) return;
      this.hasMore = page.has_more;
      for (const message of page.messages) this.merge(message, false);
      this.render({ keepTop: true });
    } catch (err) {
      this.dom.history.textContent = "Earlier messages could not be loaded.";
    } finally {
      if (generation === this.generation) this.loading = false;
    }
    if (generation === this.generation) this.maybeLoadOlder();
  }

  // ---- head, actions

  renderHead() {
    const chat = this.chat;
    const store = this.store;
    fillAvatar(this.api, this.dom.avatar, chat.contact, chat.provider);
    const name = contactName(chat.contact);
    this.dom.name.textContent = chat.title && chat.title !== name ? chat.title : name;
    const parts = [];
    const channel = store.channels.get(chat.channel_id);
    parts.push(channel ? channel.name : providerName(chat.provider));
    if (chat.contact && chat.contact.username) parts.push(`@${chat.contact.username}`);
    if (chat.status === "new") {
      const queue = store.queues.get(chat.queue_id);
      parts.push(queue ? `Waiting in ${queue.name}` : "Waiting");
    } else if (chat.status === "active") {
      parts.push(chat.operator_id === store.me.id ? "Assigned to you" : `Assigned to ${store.operatorName(chat.operator_id)}`);
    } else {
      parts.push("Closed");
    }
    this.dom.sub.textContent = parts.join(" · ");
    this.dom.root.dataset.status = chat.status;
  }

  async loadActions() {
    const chat = this.chat;
    const box = this.dom.actions;
    if (!chat || !this.store.visible(chat)) {
      box.replaceChildren();
      return;
    }
    let actions = [];
    try {
      actions = await this.api.get(`/api/chats/${chat.id}/actions`);
    } catch (err) {
      actions = [];
    }
    if (!this.chat || this.chat.id !== chat.id) return;
    const buttons = [];
    for (const action of actions) {
      const spec = ACTIONS[action.code];
      if (!spec) continue;
      const button = el("button", { type: "button", class: `btn ${spec.style}`, title: action.title,
        dataset: { action: action.code } }, icon(spec.icon), el("span", { class: "btn-label", text: action.title }));
      button.addEventListener("click", () => this.act(action.code, button));
      buttons.push(button);
    }
    box.replaceChildren(...buttons);
  }

  async act(code, button) {
    const chat = this.chat;
    if (!chat) return;
    if (code === "transfer") {
      this.openTransfer();
      return;
    }
    button.disabled = true;
    try {
      const updated = await this.api.post(`/api/chats/${chat.id}/${code}`);
      if (updated && updated.id) this.store.putChat(updated);
      if (code === "close") this.toast("Conversation closed.");
    } catch (err) {
      this.toast(err.code === "taken" ? "Another operator has taken this chat." : err.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  // ---- transfer

  async openTransfer() {
    const dialog = byId("transfer-dialog");
    const operatorSelect = byId("transfer-operator");
    const queueSelect = byId("transfer-queue");
    const error = byId("transfer-error");
    error.hidden = true;
    try {
      const [operators, queues] = await Promise.all([this.api.get("/api/operators"), this.api.get("/api/queues")]);
      for (const op of operators) this.store.operators.set(op.id, op);
      for (const queue of queues) this.store.queues.set(queue.id, queue);
      operatorSelect.replaceChildren(el("option", { value: "", text: "Choose an operator" }),
        ...operators.filter((op) => op.enabled && op.id !== this.store.me.id).map((op) =>
          el("option", { value: op.id, text: `${op.name} (${op.status})` })));
      queueSelect.replaceChildren(el("option", { value: "", text: "Choose a queue" }),
        ...queues.map((queue) => el("option", { value: queue.id, text: queue.name })));
    } catch (err) {
      this.toast("Operators and queues could not be loaded.", "error");
      return;
    }
    operatorSelect.onchange = () => { if (operatorSelect.value) queueSelect.value = ""; };
    queueSelect.onchange = () => { if (queueSelect.value) operatorSelect.value = ""; };
    byId("transfer-cancel").onclick = () => dialog.close();
    byId("transfer-form").onsubmit = async (event) => {
      event.preventDefault();
      const body = operatorSelect.value ? { operator_id: Number(operatorSelect.value) }
        : queueSelect.value ? { queue_id: Number(queueSelect.value) } : null;
      if (!body) {
        error.textContent = "Choose an operator or a queue.";
        error.hidden = false;
        return;
      }
      try {
        const updated = await this.api.post(`/api/chats/${this.chat.id}/transfer`, body);
        if (updated && updated.id) this.store.putChat(updated);
        dialog.close();
        this.toast("Conversation transferred.");
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
      }
    };
    dialog.showModal();
  }

  // ---- composer

  bindComposer() {
    const { composer, text, attach, fileInput } = this.dom;
    composer.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey && !event.metaKey) {
        event.preventDefault();
        this.send();
      }
    });
    text.addEventListener("input", () => this.autosize());
    text.addEventListener("paste", (event) => {
      const file = [...(event.clipboardData ? event.clipboardData.files : [])][0];
      if (file) {
        event.preventDefault();
        this.setFile(file);
      }
    });
    attach.addEventListener("click", () => fileInput.click());
    fileInput.addEventListener("change", () => {
      if (fileInput.files && fileInput.files[0]) this.setFile(fileInput.files[0]);
      fileInput.value = "";
    });
    byId("composer-file-remove").addEventListener("click", () => this.clearFile());
    const pane = byId("conversation");
    pane.addEventListener("dragover", (event) => {
      if (this.canWrite() && event.dataTransfer && [...event.dataTransfer.types].includes("Files")) {
        event.preventDefault();
        pane.classList.add("is-dropping");
      }
    });
    pane.addEventListener("dragleave", () => pane.classList.remove("is-dropping"));
    pane.addEventListener("drop", (event) => {
      pane.classList.remove("is-dropping");
      const file = event.dataTransfer && event.dataTransfer.files[0];
      if (file && this.canWrite()) {
        event.preventDefault();
        this.setFile(file);
      }
    });
  }

  autosize() {
    const text = this.dom.text;
    text.style.height = "auto";
    text.style.height = `${Math.min(text.scrollHeight, 180)}px`;
  }

  setFile(file) {
    this.file = file;
    this.dom.fileChip.hidden = false;
    this.dom.fileChip.querySelector(".composer-file-name").textContent = `${file.name} · ${fileSize(file.size)}`;
    this.dom.text.focus();
  }

  clearFile() {
    this.file = null;
    this.dom.fileChip.hidden = true;
  }

  canWrite() {
    return this.chat && this.store.canReply(this.chat);
  }

  /** Enable the composer, or disable it and say why. */
  renderComposer(gone = false) {
    const chat = this.chat;
    const store = this.store;
    let reason = null;
    let hint = null;
    if (gone || !store.visible(chat)) {
      reason = chat.operator_id && chat.operator_id !== store.me.id
        ? `This chat is now with ${store.operatorName(chat.operator_id)}.` : "This chat is no longer in your queues.";
    } else if (chat.status === "closed") {
      reason = "This conversation is closed. A new message from the customer opens a new chat.";
    } else if (!store.canReply(chat)) {
      reason = `Assigned to ${store.operatorName(chat.operator_id)}. Only they can reply.`;
    } else if (chat.status === "new") {
      hint = "Replying accepts this chat.";
    }
    const disabled = reason !== null;
    this.dom.composer.classList.toggle("is-disabled", disabled);
    this.dom.text.disabled = disabled;
    this.dom.send.disabled = disabled;
    this.dom.attach.disabled = disabled;
    this.dom.hint.hidden = !(reason || hint);
    this.dom.hint.textContent = reason || hint || "";
    this.dom.hint.classList.toggle("is-reason", disabled);
    this.dom.text.placeholder = disabled ? "Replies are off for this chat" : "Write a reply…";
  }

  send() {
    if (!this.canWrite()) return;
    const text = this.dom.text.value;
    const file = this.file;
    if (!text.trim() && !file) return;
    const local = {
      id: null, chat_id: this.chat.id, direction: "out", text, client_id: clientId(), status: "pending", error: null,
      author: { type: "operator", id: this.store.me.id, name: this.store.me.name }, created_at: new Date().toISOString(),
      edited_at: null,
      attachments: file ? [{ id: null, kind: kindOf(file.type), file_name: file.name, size: file.size, url: null, ready: false }] : [],
    };
    this.dom.text.value = "";
    this.autosize();
    this.clearFile();
    this.items.set(`c:${local.client_id}`, local);
    this.render({ toBottom: true });
    this.post(this.chat.id, local, file);
  }

  async post(chatId, local, file) {
    let body = { text: local.text, client_id: local.client_id };
    if (file) {
      body = new FormData();
      body.append("text", local.text);
      body.append("client_id", local.client_id);
      body.append("file", file, file.name);
    }
    try {
      const message = await this.api.post(`/api/chats/${chatId}/messages`, body);
      if (this.chat && this.chat.id === chatId) {
        this.merge(message, false);
        this.render({});
      }
    } catch (err) {
      if (!this.chat || this.chat.id !== chatId || !this.items.has(`c:${local.client_id}`)) return;
      const failed = { ...local, status: "failed", error: err.message || "the desk could not send it", retry: () => {
        this.items.set(`c:${local.client_id}`, { ...local });
        this.render({});
        this.post(chatId, local, file);
      } };
      this.items.set(`c:${local.client_id}`, failed);
      this.render({});
    }
  }

  async retry(message) {
    if (!message.id) {
      if (message.retry) message.retry();
      return;
    }
    try {
      const updated = await this.api.post(`/api/chats/${message.chat_id}/messages/${message.id}/retry`);
      const current = this.items.get(`m:${message.id}`);
      if (updated && current && current.status === "failed") {
        this.merge(updated, true);
        this.render({});
      }
    } catch (err) {
      this.toast(err.message, "error");
    }
  }
}

const ACTIONS = {
  accept: { icon: "accept", style: "btn-primary" },
  transfer: { icon: "transfer", style: "btn-ghost" },
  close: { icon: "resolve", style: "btn-ghost" },
};

function labelOf(kind) {
  return { image: "Picture", sticker: "Sticker", video: "Video", audio: "Voice message", file: "File" }[kind] || "File";
}

function kindOf(mime) {
  const major = String(mime || "").split("/")[0];
  return ["image", "video", "audio"].includes(major) ? major : "file";
}

/** Append text to ``node``, turning http(s) URLs into links; everything stays text. */
function appendLinkified(node, text) {
  let last = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    if (match.index > last) node.append(document.createTextNode(text.slice(last, match.index)));
    node.append(el("a", { href: match[0], target: "_blank", rel: "noopener noreferrer nofollow", text: match[0] }));
    last = match.index + match[0].length;
  }
  if (last < text.length) node.append(document.createTextNode(text.slice(last)));
}
