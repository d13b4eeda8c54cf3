// The chat list: tabs New (my queues) / Mine / All open (admins) / Closed, one row per chat with
// its unread badge, contact, channel, last message and time.

import { byId, fromTemplate } from "./dom.js";
import { contactName, listTime, preview, fullTime } from "./format.js";
import { fillAvatar } from "./avatar.js";
import { TABS } from "./store.js";

const EMPTY = {
  new: ["No new chats", "New conversations of your queues appear here the moment they arrive."],
  mine: ["Nothing assigned to you", "Accept a chat from New and it moves here."],
  all: ["No open conversations", "Active chats of every operator show up here."],
  closed: ["No closed chats yet", "Conversations you close are kept here."],
};
// Load the next page when the list is scrolled this close to its end.
const LOAD_MARGIN_PX = 200;

export class Inbox {
  constructor({ store, api, onOpen }) {
    this.store = store;
    this.api = api;
    this.onOpen = onOpen;
    this.tab = "new";
    this.openId = null;
    this.rows = new Map();
    this.list = byId("chat-list");
    this.empty = byId("list-empty");
    this.tabs = [...document.querySelectorAll(".tab")];
    for (const button of this.tabs) button.addEventListener("click", () => this.select(button.dataset.tab));
    this.list.addEventListener("scroll", () => this.maybeLoadMore());
    this.list.addEventListener("keydown", (event) => this.keys(event));
    store.addEventListener("chats", () => this.schedule());
    this.pending = false;
  }

  select(tab) {
    if (!TABS[tab]) return;
    this.tab = tab;
    this.render();
    this.list.scrollTop = 0;
    this.maybeLoadMore();
  }

  setOpen(id) {
    this.openId = id;
    for (const [rowId, row] of this.rows) {
      row.classList.toggle("is-open", rowId === id);
      row.setAttribute("aria-selected", rowId === id ? "true" : "false");
    }
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  render() {
    const store = this.store;
    for (const button of this.tabs) {
      const active = button.dataset.tab === this.tab;
      button.classList.toggle("is-active", active);
      button.setAttribute("aria-selected", active ? "true" : "false");
      const count = button.querySelector(".tab-count");
      if (count) {
        // How many conversations the tab holds; highlighted while any of them has unread messages.
        const chats = store.chatsFor(button.dataset.tab);
        const n = chats.length;
        count.hidden = n === 0;
        count.textContent = n > 99 ? "99+" : String(n);
        count.classList.toggle("is-alert", chats.some((c) => c.unread > 0));
      }
    }
    const chats = store.chatsFor(this.tab);
    const keep = new Set(chats.map((c) => c.id));
    for (const [id, row] of this.rows) {
      if (!keep.has(id)) {
        row.remove();
        this.rows.delete(id);
      }
    }
    let previous = null;
    for (const chat of chats) {
      let row = this.rows.get(chat.id);
      if (!row) {
        row = fromTemplate("tpl-chat-row");
        row.dataset.chatId = String(chat.id);
        row.addEventListener("click", () => this.onOpen(chat.id));
        row.addEventListener("keydown", (event) => {
          if (event.key === "Enter" || event.key === " ") {
            event.preventDefault();
            this.onOpen(chat.id);
          }
        });
        this.rows.set(chat.id, row);
      }
      this.fill(row, chat);
      const expected = previous ? previous.nextSibling : this.list.firstChild;
      if (expected !== row) this.list.insertBefore(row, expected);
      previous = row;
    }
    const page = store.pages[TABS[this.tab].status];
    const empty = chats.length === 0 && (page.done || page.loaded);
    this.empty.hidden = !empty;
    // A new desk's admin is one click from connecting its first messenger (not in a host's page).
    const action = document.getElementById("list-empty-action");
    let connect = false;
    if (empty) {
      let [title, text] = EMPTY[this.tab];
      if (this.tab === "new" && store.me.role === "admin" && store.channels.size === 0) {
        [title, text] = ["No messenger connected yet", "Connect a Telegram bot or a Facebook page, and its customers' chats arrive here."];
        connect = true;
      } else if (this.tab === "new" && store.me.role !== "admin" && !(store.me.queue_ids || []).length) {
        [title, text] = ["You are in no queue yet", "Ask an admin to add you to a queue; its new chats will show up here."];
      }
      this.empty.querySelector(".list-empty-title").textContent = title;
      this.empty.querySelector(".list-empty-text").textContent = text;
    }
    if (action) action.hidden = !connect;
  }

  fill(row, chat) {
    const store = this.store;
    row.classList.toggle("is-open", chat.id === this.openId);
    row.classList.toggle("is-unread", chat.unread > 0);
    row.classList.toggle("is-new", chat.status === "new");
    row.setAttribute("aria-selected", chat.id === this.openId ? "true" : "false");
    fillAvatar(this.api, row.querySelector(".avatar"), chat.contact, chat.provider);
    const name = contactName(chat.contact);
    row.querySelector(".chat-name").textContent = chat.title && chat.title !== name ? `${chat.title} · ${name}` : name;
    const time = row.querySelector(".chat-time");
    time.textContent = listTime(chat.last_message_at);
    time.dateTime = chat.last_message_at || "";
    time.title = fullTime(chat.last_message_at);
    const failed = chat.last_message && chat.last_message.direction === "out" && chat.last_message.status === "failed";
    row.classList.toggle("is-failed", Boolean(failed));
    let text = preview(chat.last_message);
    if (failed) text = `Not delivered · ${text.replace(/^You: /, "")}`;
    if (this.tab === "all" && chat.operator_id && chat.operator_id !== store.me.id) {
      text = `${store.operatorName(chat.operator_id)} · ${text}`;
    }
    row.querySelector(".chat-preview").textContent = text || " ";
    const badge = row.querySelector(".chat-unread");
    badge.hidden = !(chat.unread > 0);
    badge.textContent = chat.unread > 99 ? "99+" : String(chat.unread || "");
    badge.setAttribute("aria-label", `${chat.unread} unread`);
  }

  async maybeLoadMore() {
    const spec = TABS[this.tab];
    const page = this.store.pages[spec.status];
    if (page.done || page.loading) return;
    const list = this.list;
    if (page.loaded && list.scrollHeight - list.scrollTop - list.clientHeight > LOAD_MARGIN_PX) return;
    await this.loadPage(spec.status);
    if (!page.done && list.scrollHeight <= list.clientHeight + LOAD_MARGIN_PX) this.maybeLoadMore();
  }

  /** Fetch the next page of chats of one status (the first when none is loaded). */
  async loadPage(status) {
    const page = this.store.pages[status];
    if (page.done || page.loading) return;
    page.loading = true;
    try {
      const query = new URLSearchParams({ status, limit: "50" });
      if (page.before) query.set("before", String(page.before));
      const chats = await this.api.get(`/api/chats?${query}`);
      if (chats.length) page.before = chats[chats.length - 1].id;
      page.done = chats.length < 50;
      page.loaded = true;
      this.store.addChats(chats);
    } catch (err) {
      console.warn("loading chats failed", err);
    } finally {
      page.loading = false;
    }
  }

  keys(event) {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const ids = this.store.chatsFor(this.tab).map((c) => c.id);
    if (!ids.length) return;
    event.preventDefault();
    const at = ids.indexOf(this.openId);
    const next = event.key === "ArrowDown" ? Math.min(ids.length - 1, at + 1) : Math.max(0, at - 1);
    this.onOpen(ids[next]);
    const row = this.rows.get(ids[next]);
    if (row) row.focus();
  }
}
