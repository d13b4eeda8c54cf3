// The desk: wires the API client, the live event stream and the views together.
// Plain ES modules, no build step; the Socket.IO client is the pinned file in static/vendor/.

import { Api } from "./js/api.js";
import { Attention } from "./js/attention.js";
import { ContactPanel } from "./js/contact.js";
import { Conversation } from "./js/conversation.js";
import { byId, el, icon } from "./js/dom.js";
import { HostBridge } from "./js/embed.js";
import { contactName, initials, hueOf } from "./js/format.js";
import { Inbox } from "./js/inbox.js";
import { Store } from "./js/store.js";
import { Sync } from "./js/sync.js";

const config = JSON.parse(byId("desk-config").textContent);
const app = byId("app");
const api = new Api(config);
const store = new Store(config.me);
let sync = null;
let ended = false;

// ---- small shared pieces

function toast(text, kind = "info") {
  const box = byId("toasts");
  const node = el("div", { class: `toast toast-${kind}` }, el("span", { text }));
  box.append(node);
  setTimeout(() => node.classList.add("is-leaving"), 3500);
  setTimeout(() => node.remove(), 4000);
}

function showNotice(text, action) {
  const notice = byId("notice");
  notice.replaceChildren(icon("alert"), el("span", { text }));
  if (action) notice.append(action);
  notice.hidden = false;
}

function setConnection(state) {
  const banner = byId("connection");
  app.dataset.connection = state;
  if (state === "connected") {
    banner.hidden = true;
    return;
  }
  banner.hidden = false;
  banner.querySelector(".connection-text").textContent =
    state === "connecting" ? "Connecting…" : "Connection lost. Reconnecting…";
}

function sessionEnded() {
  if (ended) return;
  ended = true;
  if (sync) sync.stop();
  byId("connection").hidden = true;
  app.dataset.connection = "ended";
  const action = config.mode === "token"
    ? el("button", { type: "button", class: "link-button", text: "Reload", onclick: () => window.location.reload() })
    : el("a", { href: "/login", class: "link-button", text: "Sign in again" });
  showNotice(config.mode === "token" ? "This desk session has ended." : "Your session has ended.", action);
  byId("composer-text").disabled = true;
}

api.onUnauthorized = sessionEnded;

// ---- views

const host = new HostBridge({
  origins: config.origins,
  handlers: {
    "desk:open-chat": (data) => { if (Number.isInteger(data.chat_id)) openChat(data.chat_id); },
    "desk:set-status": (data) => setStatus(data.status),
    "desk:logout": () => logout(),
  },
});

const attention = new Attention({ store, button: byId("notify-enable"), onOpen: (id) => openChat(id) });
const inbox = new Inbox({ store, api, onOpen: (id) => openChat(id) });
const panel = new ContactPanel({ store, api });
const conversation = new Conversation({
  store, api, toast,
  onClosed: () => closeChat(),
  onOpened: (chat) => {
    inbox.setOpen(chat.id);
    panel.show(chat);
    attention.openChatId = chat.id;
    app.dataset.view = "chat";
    host.post("desk:chat-opened", { chat_id: chat.id });
  },
});

async function openChat(id) {
  let chat = store.chats.get(id);
  if (!chat) {
    try {
      chat = await api.get(`/api/chats/${id}`);
    } catch (err) {
      toast(err.status === 404 ? "That conversation is not available to you." : err.message, "error");
      return;
    }
  }
  if (conversation.chatId !== id) {
    if (window.location.hash !== `#chat-${id}`) history.replaceState(null, "", `#chat-${id}`);
    conversation.open(chat);
  } else {
    app.dataset.view = "chat";
  }
}

function closeChat() {
  conversation.close();
  inbox.setOpen(null);
  panel.show(null);
  attention.openChatId = null;
  app.dataset.view = "list";
  history.replaceState(null, "", window.location.pathname + window.location.search);
}

// ---- me: name, avatar, status

const statusPicker = byId("my-status");

function renderMe() {
  const me = store.me;
  document.querySelector(".me-name").textContent = me.name;
  const avatar = document.querySelector(".me-avatar");
  avatar.querySelector(".avatar-initials").textContent = initials(me.name);
  avatar.className = `avatar avatar-sm me-avatar hue-${hueOf(`op:${me.id}`)}`;
  statusPicker.value = me.status;
  statusPicker.parentElement.dataset.status = me.status;
}

async function setStatus(status) {
  if (!["online", "busy", "offline"].includes(status)) return;
  const previous = store.me.status;
  statusPicker.parentElement.dataset.status = status;
  try {
    store.putOperator(await api.put("/api/operators/me/status", { status }));
  } catch (err) {
    statusPicker.value = previous;
    statusPicker.parentElement.dataset.status = previous;
    toast(err.message, "error");
  }
}

statusPicker.addEventListener("change", () => setStatus(statusPicker.value));
store.addEventListener("me", renderMe);

async function logout() {
  if (config.mode === "token") {
    try {
      await api.del("/api/session");
    } catch (err) {
      // the token is gone either way
    }
    sessionEnded();
    return;
  }
  document.querySelector(".logout-form").submit();
}

// ---- live events

function applyEvent(name, data) {
  const { seq, ...object } = data;
  switch (name) {
    case "chat.created":
    case "chat.updated": {
      const known = store.chats.has(object.id);
      store.putChat(object, name === "chat.created");
      if (!known && object.status === "new" && store.visible(object)) attention.newChat(object, contactName(object.contact));
      break;
    }
    case "message.created":
    case "message.updated": {
      store.putMessage(object, name === "message.created");
      if (name === "message.created") {
        host.post("desk:message", object);
        const chat = store.chats.get(object.chat_id);
        // A customer wrote in one of my chats, or in one waiting in my queues (not every chat an admin sees).
        const mine = chat && (chat.operator_id === store.me.id || chat.status === "new");
        if (mine && object.direction === "in") attention.newMessage(object, chat, contactName(chat.contact));
      }
      break;
    }
    case "unread.updated":
      store.setUnread(object);
      break;
    case "operator.updated":
      store.putOperator(object);
      break;
    default:
      break;
  }
}

store.addEventListener("unread", () => host.post("desk:unread", store.unread));

// ---- start

async function loadNames() {
  const [queues, channels, operators] = await Promise.all([
    api.get("/api/queues").catch(() => []),
    api.get("/api/channels").catch(() => []),
    api.get("/api/operators").catch(() => []),
  ]);
  for (const queue of queues) store.queues.set(queue.id, queue);
  for (const channel of channels) store.channels.set(channel.id, channel);
  for (const op of operators) if (op.id !== store.me.id) store.operators.set(op.id, op);
}

async function start() {
  renderMe();
  setConnection("connecting");
  try {
    const [unread] = await Promise.all([
      api.get("/api/unread"),
      loadNames(),
      inbox.loadPage("new"),
      inbox.loadPage("active"),
    ]);
    store.setUnread(unread);
  } catch (err) {
    if (!ended) showNotice("The desk could not load your conversations. Reload the page to try again.");
    return;
  }
  inbox.select("new");
  app.dataset.loading = "false";
  sync = new Sync({
    api,
    seq: config.seq,
    token: config.mode === "token" ? config.token : null,
    onEvent: applyEvent,
    onState: (state) => (state === "ended" ? checkSession() : setConnection(state)),
    onReset: () => window.location.reload(),
  });
  sync.start();
  const match = /^#chat-(\d+)$/.exec(window.location.hash);
  if (match) openChat(Number(match[1]));
  host.post("desk:ready", { operator: store.me });
  host.post("desk:unread", store.unread);
}

/** The socket was refused: find out whether the session ended or the server is away. */
async function checkSession() {
  setConnection("disconnected");
  try {
    await api.get("/api/operators/me");
    // The session is fine (the server restarted or is starting): let the client try again.
    setTimeout(() => { if (sync && !ended && !sync.connected) sync.socket.connect(); }, 2000);
  } catch (err) {
    if (err.status !== 401) setTimeout(checkSession, 3000);
  }
}

start();
