// Getting the agent's attention: unread total in the tab title, a soft chime, desktop
// notifications once allowed, and a reminder while new chats wait to be accepted.

// Remind every this often while a new chat has waited at least this long.
const REMIND_EVERY_MS = 60_000;
const REMIND_AFTER_MS = 60_000;
// At most one chime in this window (a burst of messages makes one sound).
const CHIME_GAP_MS = 1500;

export class Attention {
  constructor({ store, button, onOpen }) {
    this.store = store;
    this.button = button;
    this.onOpen = onOpen;
    this.baseTitle = document.title;
    this.audio = null;
    this.lastChime = 0;
    this.openChatId = null;
    // Browsers refuse the permission prompt in a cross-origin frame: an embedded desk does without.
    this.supported = "Notification" in window && window.parent === window;
    store.addEventListener("unread", () => this.updateTitle());
    this.updateButton();
    button.addEventListener("click", () => this.askPermission());
    // Browsers start audio only after a user gesture: prepare it on the first one.
    const unlock = () => {
      this.context();
      window.removeEventListener("pointerdown", unlock);
      window.removeEventListener("keydown", unlock);
    };
    window.addEventListener("pointerdown", unlock);
    window.addEventListener("keydown", unlock);
    setInterval(() => this.remind(), REMIND_EVERY_MS);
  }

  updateTitle() {
    const n = this.store.unread.messages;
    document.title = n > 0 ? `(${n > 999 ? "999+" : n}) ${this.baseTitle}` : this.baseTitle;
  }

  updateButton() {
    this.button.hidden = !this.supported || Notification.permission !== "default";
  }

  async askPermission() {
    if (!this.supported) return;
    try {
      await Notification.requestPermission();
    } finally {
      this.updateButton();
    }
  }

  context() {
    if (!this.audio) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return null;
      this.audio = new Ctx();
    }
    if (this.audio.state === "suspended") this.audio.resume().catch(() => {});
    return this.audio;
  }

  /** Play a short two-note chime (generated: no file to fetch). */
  chime() {
    const now = Date.now();
    if (now - this.lastChime < CHIME_GAP_MS) return;
    this.lastChime = now;
    const ctx = this.audio;
    if (!ctx || ctx.state !== "running") return;
    const start = ctx.currentTime;
    [[880, 0], [1318.5, 0.12]].forEach(([freq, offset]) => {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = "sine";
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, start + offset);
      gain.gain.exponentialRampToValueAtTime(0.12, start + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.45);
      osc.connect(gain).connect(ctx.destination);
      osc.start(start + offset);
      osc.stop(start + offset + 0.5);
    });
  }

  notify(title, body, chatId) {
    if (!this.supported || Notification.permission !== "granted") return;
    if (document.visibilityState === "visible" && document.hasFocus()) return;
    try {
      const note = new Notification(title, { body, tag: chatId ? `desk-chat-${chatId}` : "desk", renotify: true });
      note.onclick = () => {
        window.focus();
        if (chatId) this.onOpen(chatId);
        note.close();
      };
    } catch (err) {
      // Some browsers allow notifications only from a service worker: the chime still plays.
    }
  }

  /** A new chat appeared in my queues. */
  newChat(chat, name) {
    if (this.store.me.status === "offline") return;
    this.chime();
    this.notify(`New chat: ${name}`, chat.last_message ? previewText(chat.last_message) : "A customer is waiting.", chat.id);
  }

  /** A customer wrote in a chat of mine (or one waiting in my queues). */
  newMessage(message, chat, name) {
    const looking = this.openChatId === chat.id && document.visibilityState === "visible";
    if (looking) return;
    this.chime();
    this.notify(name, previewText(message), chat.id);
  }

  remind() {
    if (this.store.me.status !== "online") return;
    const now = Date.now();
    const waiting = this.store.waiting().filter((chat) => now - Date.parse(chat.created_at) >= REMIND_AFTER_MS);
    if (!waiting.length) return;
    this.lastChime = 0;
    this.chime();
    this.notify(waiting.length === 1 ? "A chat is waiting" : `${waiting.length} chats are waiting`,
      "Accept them in the New tab.", waiting.length === 1 ? waiting[0].id : null);
  }
}

function previewText(message) {
  const text = (message.text || "").trim();
  if (text) return text.length > 140 ? `${text.slice(0, 139)}…` : text;
  const first = (message.attachments || [])[0];
  return first ? (first.file_name || first.kind) : "New message";
}
