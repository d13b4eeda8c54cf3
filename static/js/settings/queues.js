// Queues: name, routing, members (each operator's queue_ids) and the chat actions agents get.

import { byId, el, icon } from "../dom.js";
import { hueOf, initials } from "../format.js";
import { busy, clearErrors, confirmAction, openDialog, pill, showErrors, toast } from "./ui.js";

export const ROUTINGS = { manual: "Manual", round_robin: "Round robin", least_busy: "Least busy" };

export class Queues {
  constructor({ api, state }) {
    this.api = api;
    this.state = state;
    this.list = byId("queue-list");
    this.empty = byId("queue-empty");
    this.dialog = byId("queue-dialog");
    this.form = byId("queue-form");
    this.editing = null;

    byId("queue-add").addEventListener("click", () => this.open(null));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    state.addEventListener("change", (event) => {
      if (["queues", "operators", "channels", "actions"].includes(event.detail)) this.render();
    });
  }

  render() {
    const queues = this.state.queues;
    byId("count-queues").textContent = queues.length ? String(queues.length) : "";
    this.empty.hidden = queues.length > 0;
    this.list.replaceChildren(...queues.map((queue) => this.card(queue)));
  }

  actionTitle(code) {
    const action = this.state.actions.find((a) => a.code === code);
    return action ? action.title : code;
  }

  card(queue) {
    const members = this.state.members(queue.id);
    const channels = this.state.channels.filter((c) => c.queue_id === queue.id);
    const facts = el("dl", { class: "facts-grid" },
      el("dt", { text: "Members" }),
      el("dd", {}, members.length
        ? el("span", { class: "member-list" }, ...members.map((op) => el("span", { class: "member", title: op.login },
          el("span", { class: `avatar avatar-xs hue-${hueOf(`op:${op.id}`)}` }, el("span", { class: "avatar-initials", text: initials(op.name) })),
          el("span", { text: op.name }))))
        : el("span", { class: "text-warn", text: "No members: its new chats wait for an admin." })),
      el("dt", { text: "Chat actions" }),
      el("dd", { class: "pill-list" }, ...queue.actions.map((code) => pill(this.actionTitle(code), "muted"))),
      el("dt", { text: "Channels" }),
      el("dd", { text: channels.length ? channels.map((c) => c.name).join(", ") : "—" }));
    return el("article", { class: "card queue-card", dataset: { queueId: queue.id }, "data-testid": "queue" },
      el("div", { class: "card-top" },
        el("span", { class: "provider-icon queue-icon" }, icon("layers")),
        el("div", { class: "card-title" },
          el("h2", { text: queue.name }),
          el("p", { class: "card-sub", text: `Routing: ${ROUTINGS[queue.routing] || queue.routing}` })),
        el("div", { class: "card-top-actions" },
          el("button", { type: "button", class: "btn btn-sm", onclick: () => this.open(queue) }, icon("edit"), el("span", { text: "Edit" })),
          el("button", { type: "button", class: "icon-button icon-button-danger", title: `Delete ${queue.name}`, onclick: () => this.remove(queue) },
            icon("trash"), el("span", { class: "sr-only", text: `Delete ${queue.name}` })))),
      facts);
  }

  remove(queue) {
    confirmAction({
      title: `Delete ${queue.name}?`,
      text: "Its channels are left without a queue until you pick another for them. A queue where chats wait cannot be deleted.",
      ok: "Delete",
      run: async () => {
        await this.api.del(`/api/queues/${queue.id}`);
        this.state.remove("queues", queue.id);
        for (const op of this.state.members(queue.id)) op.queue_ids = op.queue_ids.filter((id) => id !== queue.id);
        this.state.changed("operators");
        this.state.set("channels", await this.api.get("/api/channels"));
        toast(`${queue.name} is deleted.`);
      },
    });
  }

  open(queue) {
    this.editing = queue;
    const form = this.form;
    clearErrors(form);
    form.reset();
    byId("queue-dialog-title").textContent = queue ? `Edit ${queue.name}` : "Add a queue";
    byId("queue-submit").textContent = queue ? "Save" : "Add";
    form.elements.name.value = queue ? queue.name : "";
    for (const radio of form.querySelectorAll('input[name="routing"]')) radio.checked = radio.value === (queue ? queue.routing : "manual");
    const members = queue ? new Set(this.state.members(queue.id).map((op) => op.id)) : new Set();
    byId("queue-members").replaceChildren(...this.state.operators.map((op) => el("label", { class: `check${op.enabled ? "" : " is-disabled"}` },
      el("input", { type: "checkbox", name: "members", value: op.id, checked: members.has(op.id) }),
      el("span", { text: op.name }), el("span", { class: "check-note", text: op.login }))));
    byId("queue-actions").replaceChildren(...this.state.actions.map((action) => el("label", { class: "check", title: action.code },
      el("input", { type: "checkbox", name: "actions", value: action.code, checked: queue ? queue.actions.includes(action.code) : action.default }),
      el("span", { text: action.title }))));
    openDialog(this.dialog);
    form.elements.name.focus();
  }

  checked(name) {
    return [...this.form.querySelectorAll(`input[name="${name}"]:checked`)].map((box) => box.value);
  }

  async submit() {
    const button = byId("queue-submit");
    const box = byId("queue-error");
    const form = this.form.elements;
    clearErrors(this.form);
    const values = {
      name: form.name.value.trim(),
      routing: this.form.querySelector('input[name="routing"]:checked').value,
      actions: this.checked("actions"),
    };
    const members = new Set(this.checked("members").map(Number));
    try {
      await busy(button, async () => {
        let queue;
        if (this.editing) {
          const body = {};
          if (values.name !== this.editing.name) body.name = values.name;
          if (values.routing !== this.editing.routing) body.routing = values.routing;
          if (values.actions.join() !== this.editing.actions.join()) body.actions = values.actions;
          queue = Object.keys(body).length ? await this.api.patch(`/api/queues/${this.editing.id}`, body) : this.editing;
        } else {
          queue = await this.api.post("/api/queues", values);
        }
        this.state.put("queues", queue);
        this.editing = queue;
        // Membership is each operator's queue_ids: change only the operators that join or leave.
        for (const op of this.state.operators) {
          const inside = op.queue_ids.includes(queue.id);
          if (inside === members.has(op.id)) continue;
          const queueIds = inside ? op.queue_ids.filter((id) => id !== queue.id) : [...op.queue_ids, queue.id];
          this.state.put("operators", await this.api.patch(`/api/operators/${op.id}`, { queue_ids: queueIds }));
        }
        this.dialog.close();
        toast(`${queue.name} is saved.`);
      });
    } catch (err) {
      showErrors(this.form, err, box);
    }
  }
}
