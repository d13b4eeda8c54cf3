// The contact panel: who the customer is and where the conversation stands.

import { fillAvatar } from "./avatar.js";
import { byId, el } from "./dom.js";
import { contactName, fullTime, providerName } from "./format.js";

// Wide screens show the panel beside the conversation unless the agent hid it.
const WIDE = "(min-width: 1280px)";

export class ContactPanel {
  constructor({ store, api }) {
    this.store = store;
    this.api = api;
    this.chat = null;
    this.panel = byId("contact-panel");
    this.toggle = byId("panel-toggle");
    this.wanted = window.matchMedia(WIDE).matches && remembered() !== "hidden";
    this.toggle.addEventListener("click", () => this.setOpen(this.panel.hidden, true));
    byId("contact-close").addEventListener("click", () => this.setOpen(false, true));
    store.addEventListener("chat", (event) => {
      if (this.chat && event.detail.chat.id === this.chat.id) this.show(event.detail.chat);
    });
  }

  setOpen(open, remember = false) {
    if (remember) {
      this.wanted = open;
      if (window.matchMedia(WIDE).matches) remember(open ? "shown" : "hidden");
    }
    this.panel.hidden = !open || !this.chat;
    this.toggle.setAttribute("aria-pressed", open ? "true" : "false");
    document.getElementById("app").classList.toggle("has-panel", !this.panel.hidden);
  }

  show(chat) {
    this.chat = chat;
    const contact = chat ? chat.contact : null;
    if (!chat) {
      this.setOpen(false);
      return;
    }
    fillAvatar(this.api, this.panel.querySelector(".contact-avatar"), contact, null);
    byId("contact-name").textContent = contactName(contact);
    byId("contact-username").textContent = contact && contact.username ? `@${contact.username}` : "";
    const store = this.store;
    const channel = store.channels.get(chat.channel_id);
    const queue = store.queues.get(chat.queue_id);
    const facts = [
      ["Channel", channel ? `${channel.name} (${providerName(chat.provider)})` : providerName(chat.provider)],
      [chat.provider === "telegram" ? "Telegram ID" : "Customer ID", contact ? contact.external_id : ""],
      ["Group", chat.title || ""],
      ["Queue", queue ? queue.name : ""],
      ["Status", { new: "Waiting to be accepted", active: "Active", closed: "Closed" }[chat.status] || chat.status],
      ["Assigned to", chat.operator_id ? (chat.operator_id === store.me.id ? "You" : store.operatorName(chat.operator_id)) : "Nobody yet"],
      ["Started", fullTime(chat.created_at)],
      ["Closed", chat.closed_at ? fullTime(chat.closed_at) : ""],
    ];
    const list = byId("contact-facts");
    list.replaceChildren();
    for (const [term, value] of facts) {
      if (!value) continue;
      list.append(el("dt", { text: term }), el("dd", { text: value }));
    }
    this.setOpen(this.wanted);
  }
}

// Storage may be blocked (an embedded desk with third-party storage blocked): then nothing is kept.
function remembered() {
  try {
    return window.localStorage.getItem("desk.panel");
  } catch (err) {
    return null;
  }
}

function remember(value) {
  try {
    window.localStorage.setItem("desk.panel", value);
  } catch (err) {
    // not kept
  }
}
