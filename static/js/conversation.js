// The conversation pane: the history (keyset pages as you scroll up, days separated), live
// messages with their delivery status, the composer and the chat's actions.
//
// The history is windowed: the pane holds at most WINDOW messages (and their DOM nodes), a
// contiguous run of the chat. Pages further from the viewport than that are dropped and fetched
// again by keyset (`before` / `after`) when the agent scrolls back to them, so a chat with
// thousands of messages costs what one of a few pages does. The message at the top of the
// viewport stays where it is across every change; replies not yet stored (no id) are never dropped.
//
// While the agent reads further up, new messages do not pull the pane down: a "New messages" pill
// counts them and jumps to the newest, and they stay unread until the agent has seen the bottom.

import { clientId } from "./api.js";
import { fillAvatar } from "./avatar.js";
import { byId, el, fromTemplate, icon } from "./dom.js";
import { clock, contactName, dayKey, dayLabel, fileSize, fullTime, parseTime, providerName } from "./format.js";

const PAGE = 50;
// The most messages the pane keeps: three pages, so that the page being loaded and the one in
// view never come near the side that is dropped (it is always the far half).
const WINDOW = 3 * PAGE;
// Load older (newer) messages when the history is scrolled this close to its top (bottom).
const EDGE_PX = 160;
// Within this distance of the bottom the pane follows new messages.
const STICK_PX = 80;
// New messages in view are marked read after this pause, so that a burst costs one request.
const READ_DELAY_MS = 300;
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
    // The loaded window, by key (`m:<id>`, or `c:<client_id>` for a reply not yet stored), and
    // each one's node; `rendered` is what the list shows, in order.
    this.items = new Map();
    this.nodes = new Map();
    this.rendered = [];
    // Whether the chat has messages before (after) the window that are not loaded.
    this.hasOlder = false;
    this.hasNewer = false;
    this.loading = false;
    // While a page is on its way, message events wait here and are applied after it.
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
      newer: byId("history-newer"),
      pill: byId("new-messages"),
      pillCount: byId("new-messages-count"),
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
    // The ids of the messages that arrived while the agent read further up, not yet seen.
    this.unseen = new Set();
    this.dom.messages.addEventListener("scroll", () => {
      this.stick = this.atLatest();
      if (this.stick) this.seenLatest();
      this.maybeLoad();
    });
    this.dom.pill.addEventListener("click", () => this.jumpToLatest());
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
    this.generation++;
    this.chat = chat;
    this.items.clear();
    this.nodes.clear();
    this.rendered = [];
    this.dom.list.replaceChildren();
    this.hasOlder = false;
    this.hasNewer = false;
    this.loading = false;
    this.stick = true;
    this.early = null;
    this.unseen.clear();
    this.renderPill();
    this.clearFile();
    this.dom.text.value = "";
    this.autosize();
    this.dom.placeholder.hidden = true;
    this.dom.root.hidden = false;
    this.dom.root.dataset.chatId = String(chat.id);
    this.renderHead();
    this.renderComposer();
    this.loadActions();
    this.onOpened(chat);
    this.markRead();
    const loaded = await this.loadLatest();
    if (loaded && window.matchMedia("(pointer: fine)").matches) this.dom.text.focus({ preventScroll: true });
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

  messageEvent({ message, created }) {
    if (!this.chat || message.chat_id !== this.chat.id) return;
    // A new message from someone else, while the pane is away from the newest ones: count it.
    const mine = message.author && message.author.type === "operator" && message.author.id === this.store.me.id;
    if (created && message.id && !mine && (!this.stick || this.hasNewer)) {
      this.unseen.add(message.id);
      this.renderPill();
    }
    if (this.early) {
      this.early.push(message); // a page is on its way: apply after it
      return;
    }
    this.take(message, true);
    this.render();
  }

  markReadSoon() {
    if (!this.seesUnread()) return;
    clearTimeout(this.readTimer);
    // Asked again then: the read sent on opening the chat may have answered, or the agent scrolled up.
    this.readTimer = setTimeout(() => { if (this.seesUnread()) this.markRead(); }, READ_DELAY_MS);
  }

  /** Whether the open chat has unread messages that are the agent's to read and in their view: a
   * message that arrives while they read further up stays unread until they come back down. */
  seesUnread() {
    if (!this.chat || document.visibilityState !== "visible" || !this.stick || this.hasNewer) return false;
    const chat = this.store.chats.get(this.chat.id);
    if (!chat || !(chat.unread > 0)) return false;
    // New messages are read while the agent looks at their own (or a waiting) chat; an admin
    // looking in on a colleague's chat leaves them unread for the colleague.
    return !(chat.operator_id && chat.operator_id !== this.store.me.id);
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

  /** Return the lowest and highest stored id in the window (nulls when it has none). */
  bounds() {
    let oldest = null;
    let newest = null;
    for (const message of this.items.values()) {
      if (!message.id) continue;
      if (oldest === null || message.id < oldest) oldest = message.id;
      if (newest === null || message.id > newest) newest = message.id;
    }
    return [oldest, newest];
  }

  /** Take in a message from an event or a reply: one outside the loaded window is left for the
   * page that loads it (it only settles the reply it answers). */
  take(message, authoritative) {
    const [oldest, newest] = this.bounds();
    const outside = oldest !== null
      && ((this.hasOlder && message.id < oldest) || (this.hasNewer && message.id > newest));
    if (!outside) {
      this.merge(message, authoritative);
      return;
    }
    if (message.client_id && this.items.delete(`c:${message.client_id}`)) this.nodes.delete(`c:${message.client_id}`);
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

  /** Return the stored messages in id order, and the replies not yet stored (in sending order). */
  ordered() {
    const sent = [];
    const local = [];
    for (const [key, message] of this.items) (message.id ? sent : local).push([key, message]);
    sent.sort((a, b) => a[1].id - b[1].id);
    return [sent, local];
  }

  /** Drop the stored messages beyond WINDOW from the end further from ``anchor`` (the message at
   * the top of the viewport; none when the pane follows the newest); return those kept. */
  trim(sent, anchor) {
    const excess = sent.length - WINDOW;
    if (excess <= 0) return sent;
    const found = anchor ? sent.findIndex(([key]) => key === anchor.key) : -1;
    const at = found === -1 ? sent.length - 1 : found;
    const fromTop = at >= sent.length / 2;
    const dropped = fromTop ? sent.slice(0, excess) : sent.slice(sent.length - excess);
    for (const [key] of dropped) {
      this.items.delete(key);
      this.nodes.delete(key);
    }
    if (fromTop) {
      this.hasOlder = true;
      return sent.slice(excess);
    }
    this.hasNewer = true;
    this.stick = false;
    return sent.slice(0, sent.length - excess);
  }

  /** Redraw the window; the pane follows the newest message, or keeps the one at its top in place. */
  render({ toBottom = false } = {}) {
    const follow = toBottom || this.stick;
    const anchor = follow ? null : this.anchor();
    const [all, local] = this.ordered();
    const sent = this.trim(all, anchor);
    // Replies not yet stored belong after the newest message: shown once the window reaches it.
    const shown = this.hasNewer ? sent : sent.concat(local);
    const children = [];
    const rendered = [];
    let lastDay = null;
    let lastAuthor = null;
    for (const [key, message] of shown) {
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
      rendered.push([key, node]);
    }
    this.dom.list.replaceChildren(...children);
    this.rendered = rendered;
    this.dom.history.textContent = this.hasOlder ? "" : this.items.size ? "This is the start of the conversation." : "No messages yet.";
    this.dom.history.classList.toggle("is-start", !this.hasOlder);
    this.dom.newer.hidden = !this.hasNewer;
    if (follow && !this.hasNewer) this.toBottom();
    else {
      if (anchor) this.restore(anchor);
      this.stick = this.atLatest();
    }
    if (this.stick) this.seenLatest();
  }

  /** The agent sees the newest messages: the pill goes, and what came meanwhile is read. */
  seenLatest() {
    if (this.unseen.size) {
      this.unseen.clear();
      this.renderPill();
    }
    this.markReadSoon();
  }

  renderPill() {
    const count = this.unseen.size;
    this.dom.pill.hidden = count === 0;
    this.dom.pillCount.textContent = count > 99 ? "99+" : String(count);
    this.dom.pill.title = count === 1 ? "1 new message: show it" : `${count} new messages: show the newest`;
  }

  /** Show the newest messages (the pill's jump): fetched again when the window has moved away. */
  jumpToLatest() {
    if (this.hasNewer) this.loadLatest();
    else this.render({ toBottom: true });
    this.dom.messages.focus({ preventScroll: true });
  }

  /** Return where the first message visible at the top of the pane is (null when none is). */
  anchor() {
    const top = this.dom.messages.getBoundingClientRect().top;
    for (const [key, node] of this.rendered) {
      const rect = node.getBoundingClientRect();
      if (rect.bottom > top) return { key, offset: rect.top - top };
    }
    return null;
  }

  /** Scroll so that the anchored message is where it was before the list changed. */
  restore(anchor) {
    const entry = this.nodes.get(anchor.key);
    if (!entry || !entry.node.isConnected) return;
    const box = this.dom.messages;
    const offset = entry.node.getBoundingClientRect().top - box.getBoundingClientRect().top;
    // Measured after layout, so this also holds where the browser anchored the scroll itself.
    if (offset !== anchor.offset) box.scrollTop += offset - anchor.offset;
  }

  /** Whether the pane shows the chat's newest message, near enough to follow new ones. */
  atLatest() {
    const box = this.dom.messages;
    return !this.hasNewer && box.scrollHeight - box.scrollTop - box.clientHeight < STICK_PX;
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
    // A system note is "in"; an outgoing message by "system" is the account's own, sent outside
    // the desk (a reply typed in Meta's Page inbox): a bubble on our side, with the page's name.
    const system = message.author && message.author.type === "system" && !outgoing;
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

  /** Load the next page when the agent has scrolled near an end of the window that is not the chat's. */
  maybeLoad() {
    if (!this.chat || this.loading) return;
    const box = this.dom.messages;
    if (this.hasOlder && box.scrollTop <= EDGE_PX) this.loadOlder();
    else if (this.hasNewer && box.scrollHeight - box.scrollTop - box.clientHeight <= EDGE_PX) this.loadNewer();
  }

  /** Show the newest page: on opening a chat, and when the agent replies from far up the history. */
  loadLatest() {
    for (const key of [...this.items.keys()]) {
      if (key.startsWith("m:")) {
        this.items.delete(key);
        this.nodes.delete(key);
      }
    }
    this.hasOlder = true;
    this.hasNewer = false;
    this.dom.newer.textContent = "";
    this.render({ toBottom: true });
    this.dom.history.textContent = "Loading…";
    return this.fetchPage(`limit=${PAGE}`, (page) => {
      this.hasOlder = page.has_more;
      for (const message of page.messages) this.merge(message, false);
    }, { toBottom: true, failed: () => { this.dom.history.textContent = "The conversation could not be loaded."; } });
  }

  loadOlder() {
    const [oldest] = this.bounds();
    this.dom.history.textContent = "Loading earlier messages…";
    // With no stored message in the window (the first page failed), the newest page comes first.
    return this.fetchPage(oldest === null ? `limit=${PAGE}` : `before=${oldest}&limit=${PAGE}`, (page) => {
      this.hasOlder = page.has_more;
      for (const message of page.messages) this.merge(message, false);
    }, { failed: () => { this.dom.history.textContent = "Earlier messages could not be loaded."; } });
  }

  loadNewer() {
    const [, newest] = this.bounds();
    if (newest === null) return Promise.resolve(false);
    this.dom.newer.textContent = "Loading newer messages…";
    return this.fetchPage(`after=${newest}&limit=${PAGE}`, (page) => {
      this.hasNewer = page.has_more;
      this.dom.newer.textContent = "";
      for (const message of page.messages) this.merge(message, false);
    }, { failed: () => { this.dom.newer.textContent = "Newer messages could not be loaded."; } });
  }

  /** Fetch a page of the open chat and ``apply`` it; message events wait until then, so none
   * falls between the page and the window. Another chat or a later load discards the page.
   * Return whether it was applied. */
  async fetchPage(query, apply, { toBottom = false, failed }) {
    const chat = this.chat;
    const generation = ++this.generation;
    this.loading = true;
    if (!this.early) this.early = [];
    let page = null;
    try {
      page = await this.api.get(`/api/chats/${chat.id}/messages?${query}`);
    } catch (err) {
      page = null;
    }
    if (generation !== this.generation) return false;
    if (page) apply(page);
    this.loading = false;
    const early = this.early;
    this.early = null;
    for (const message of early) this.take(message, true);
    this.render({ toBottom });
    if (!page) {
      failed(); // the next scroll to this end tries again
      return false;
    }
    this.maybeLoad();
    return true;
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
    // From far up the history, the reply takes the agent back to the newest messages.
    if (this.hasNewer) this.loadLatest();
    else this.render({ toBottom: true });
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
        this.take(message, false);
        this.render();
      }
    } catch (err) {
      if (!this.chat || this.chat.id !== chatId || !this.items.has(`c:${local.client_id}`)) return;
      const failed = { ...local, status: "failed", error: err.message || "the desk could not send it", retry: () => {
        this.items.set(`c:${local.client_id}`, { ...local });
        this.render();
        this.post(chatId, local, file);
      } };
      this.items.set(`c:${local.client_id}`, failed);
      this.render();
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
        this.render();
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
