// What the desk knows: me, the chats I see, my counters, and the names it shows (operators,
// queues, channels). Events change it; the views listen to it.

const ORDER = (a, b) => (b.last_message_at || "").localeCompare(a.last_message_at || "") || b.id - a.id;

export const TABS = {
  new: { status: "new", test: (chat) => chat.status === "new" },
  mine: { status: "active", mine: true, test: (chat, me) => chat.status === "active" && chat.operator_id === me.id },
  all: { status: "active", test: (chat) => chat.status === "active" },
  closed: { status: "closed", test: (chat) => chat.status === "closed" },
};

export class Store extends EventTarget {
  constructor(me) {
    super();
    this.me = me;
    this.chats = new Map();
    this.unread = { chats: 0, messages: 0 };
    this.operators = new Map([[me.id, me]]);
    this.queues = new Map();
    this.channels = new Map();
    // Keyset paging of the list per status: the id of the oldest chat fetched, and whether more remain.
    this.pages = { new: { done: false }, active: { done: false }, closed: { done: false } };
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Whether I may see the chat as it is now (CONTRACT §4, who sees what). */
  visible(chat) {
    if (this.me.role === "admin" || chat.operator_id === this.me.id) return true;
    return chat.status === "new" && (this.me.queue_ids || []).includes(chat.queue_id);
  }

  isMine(chat) {
    return chat.operator_id === this.me.id;
  }

  /** Whether I may write in the chat (an admin may write in any open chat). */
  canReply(chat) {
    if (!chat || chat.status === "closed" || !this.visible(chat)) return false;
    if (chat.status === "new") return !chat.operator_id || chat.operator_id === this.me.id;
    return chat.operator_id === this.me.id || this.me.role === "admin";
  }

  chatsFor(tab) {
    const spec = TABS[tab];
    return [...this.chats.values()].filter((chat) => spec.test(chat, this.me)).sort(ORDER);
  }

  /** Take in chats from a list page. */
  addChats(chats) {
    for (const chat of chats) if (this.visible(chat)) this.chats.set(chat.id, chat);
    this.emit("chats");
  }

  /** Apply chat.created / chat.updated: keep it, or drop it once it left my view. */
  putChat(chat, created = false) {
    const prev = this.chats.get(chat.id) || null;
    if (!this.visible(chat)) {
      if (prev) this.chats.delete(chat.id);
      this.emit("chat", { chat, prev, created: false, gone: true });
    } else {
      this.chats.set(chat.id, chat);
      this.emit("chat", { chat, prev, created, gone: false });
    }
    this.emit("chats");
  }

  /** Apply message.created / message.updated. */
  putMessage(message, created) {
    const chat = this.chats.get(message.chat_id);
    if (chat && (!chat.last_message || chat.last_message.id <= message.id)) {
      chat.last_message = message;
      if (created && message.created_at > (chat.last_message_at || "")) chat.last_message_at = message.created_at;
      this.emit("chats");
    }
    this.emit("message", { message, created, chat: chat || null });
  }

  setUnread(counts) {
    this.unread = { chats: counts.chats, messages: counts.messages };
    this.emit("unread", this.unread);
  }

  putOperator(op) {
    this.operators.set(op.id, op);
    if (op.id === this.me.id) {
      const queuesChanged = JSON.stringify(op.queue_ids) !== JSON.stringify(this.me.queue_ids);
      this.me = op;
      this.emit("me", op);
      if (queuesChanged) {
        for (const chat of [...this.chats.values()]) if (!this.visible(chat)) this.chats.delete(chat.id);
        this.emit("chats");
      }
    }
  }

  /** The chats waiting for someone to accept them (new, in my queues). */
  waiting() {
    return [...this.chats.values()].filter((chat) => chat.status === "new");
  }

  operatorName(id) {
    const op = this.operators.get(id);
    return op ? op.name : "another operator";
  }
}
