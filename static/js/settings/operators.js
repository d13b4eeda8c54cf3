// Operators: create, edit, disable, reset a password, role, queues, max chats, and an admin
// setting someone's status (a supervisor sending an idle agent offline).

import { byId, el, icon } from "../dom.js";
import { hueOf, initials } from "../format.js";
import { busy, clearErrors, confirmAction, openDialog, pill, sentence, showErrors, toast } from "./ui.js";

const STATUSES = [["online", "Online"], ["busy", "Busy"], ["offline", "Offline"]];

export class Operators {
  constructor({ api, state }) {
    this.api = api;
    this.state = state;
    this.body = byId("operator-list");
    this.dialog = byId("operator-dialog");
    this.form = byId("operator-form");
    this.passwordDialog = byId("password-dialog");
    this.passwordForm = byId("password-form");
    this.editing = null;
    this.resetting = null;

    byId("operator-add").addEventListener("click", () => this.open(null));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.passwordForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submitPassword();
    });
    state.addEventListener("change", (event) => {
      if (["operators", "queues"].includes(event.detail)) this.render();
    });
  }

  render() {
    const operators = this.state.operators;
    byId("count-operators").textContent = operators.length ? String(operators.length) : "";
    this.body.replaceChildren(...operators.map((op) => this.row(op)));
  }

  row(op) {
    const me = op.id === this.state.me.id;
    const queues = op.queue_ids.map((id) => this.state.queueName(id)).filter(Boolean);
    const status = el("select", { class: "status-select", "aria-label": `Status of ${op.name}`, disabled: !op.enabled });
    for (const [value, label] of STATUSES) status.append(el("option", { value, text: label }));
    status.value = op.status;
    const picker = el("label", { class: "status-picker status-picker-sm", dataset: { status: op.status } }, el("span", { class: "status-dot" }), status);
    status.addEventListener("change", async () => {
      status.disabled = true;
      try {
        this.state.put("operators", await this.api.patch(`/api/operators/${op.id}`, { status: status.value }));
      } catch (err) {
        status.value = op.status;
        toast(sentence(err.message), "error");
      } finally {
        status.disabled = false;
      }
    });

    const who = el("div", { class: "who" },
      el("span", { class: `avatar avatar-sm hue-${hueOf(`op:${op.id}`)}` }, el("span", { class: "avatar-initials", text: initials(op.name) })),
      el("div", { class: "who-text" },
        el("span", { class: "who-name" }, document.createTextNode(op.name), me ? el("span", { class: "tag", text: "you" }) : null),
        el("span", { class: "who-login", text: op.login })),
      op.enabled ? null : pill("Disabled", "muted"));

    const actions = el("div", { class: "row-actions" },
      el("button", { type: "button", class: "icon-button", title: `Edit ${op.name}`, onclick: () => this.open(op) },
        icon("edit"), el("span", { class: "sr-only", text: `Edit ${op.name}` })),
      el("button", { type: "button", class: "icon-button", title: "Reset the password", onclick: () => this.openPassword(op) },
        icon("key"), el("span", { class: "sr-only", text: `Reset the password of ${op.name}` })),
      me ? null : el("button", { type: "button", class: "btn btn-sm", onclick: (e) => this.setEnabled(op, !op.enabled, e.currentTarget) },
        el("span", { text: op.enabled ? "Disable" : "Enable" })),
      me ? null : el("button", { type: "button", class: "icon-button icon-button-danger", title: `Delete ${op.name}`, onclick: () => this.remove(op) },
        icon("trash"), el("span", { class: "sr-only", text: `Delete ${op.name}` })));

    // Each cell has a class so that a narrow page can lay the row out as a card; the labels
    // show only there, where the table's head is hidden.
    return el("tr", { class: op.enabled ? "" : "is-disabled", dataset: { operatorId: op.id }, "data-testid": "operator" },
      el("td", { class: "op-who" }, who),
      el("td", { class: "op-role" }, pill(op.role === "admin" ? "Admin" : "Agent", op.role === "admin" ? "accent" : "muted")),
      el("td", { class: "op-status" }, picker),
      el("td", { class: "op-queues queue-names" }, el("span", { class: "cell-label", text: "Queues" }),
        queues.length ? queues.join(", ") : "—"),
      el("td", { class: "op-max num" }, el("span", { class: "cell-label", text: "Max chats" }), String(op.max_chats)),
      el("td", { class: "op-actions" }, actions));
  }

  async setEnabled(op, enabled, button) {
    try {
      const changed = await busy(button, () => this.api.patch(`/api/operators/${op.id}`, { enabled }));
      this.state.put("operators", changed);
      toast(enabled ? `${op.name} can sign in again.` : `${op.name} is disabled and signed out.`);
    } catch (err) {
      toast(sentence(err.message), "error");
    }
  }

  remove(op) {
    confirmAction({
      title: `Delete ${op.name}?`,
      text: "Only an operator who never had a chat can be deleted; disable the others instead.",
      ok: "Delete",
      run: async () => {
        await this.api.del(`/api/operators/${op.id}`);
        this.state.remove("operators", op.id);
        toast(`${op.name} is deleted.`);
      },
      alt: op.enabled ? {
        label: "Disable instead",
        run: async () => this.state.put("operators", await this.api.patch(`/api/operators/${op.id}`, { enabled: false })),
      } : null,
    });
  }

  open(op) {
    this.editing = op;
    const form = this.form;
    clearErrors(form);
    form.reset();
    byId("operator-dialog-title").textContent = op ? `Edit ${op.name}` : "Add an operator";
    byId("operator-submit").textContent = op ? "Save" : "Add";
    form.elements.login.readOnly = Boolean(op);
    byId("operator-password-field").hidden = Boolean(op);
    byId("operator-status-field").hidden = !op;
    byId("operator-enabled-field").hidden = !op || op.id === this.state.me.id;
    const queues = byId("operator-queues");
    queues.replaceChildren(...this.state.queues.map((q) => el("label", { class: "check" },
      el("input", { type: "checkbox", name: "queue_ids", value: q.id, checked: op ? op.queue_ids.includes(q.id) : false }),
      el("span", { text: q.name }))));
    if (!this.state.queues.length) queues.append(el("p", { class: "muted", text: "No queue yet." }));
    if (op) {
      form.elements.name.value = op.name;
      form.elements.login.value = op.login;
      form.elements.role.value = op.role;
      form.elements.max_chats.value = String(op.max_chats);
      form.elements.status.value = op.status;
      form.elements.enabled.checked = op.enabled;
    }
    openDialog(this.dialog);
    (op ? form.elements.name : form.elements.name).focus();
  }

  values() {
    const form = this.form.elements;
    const maxChats = form.max_chats.value.trim();
    return {
      name: form.name.value.trim(),
      login: form.login.value.trim(),
      password: form.password.value,
      role: form.role.value,
      max_chats: /^\d+$/.test(maxChats) ? Number(maxChats) : maxChats,
      queue_ids: [...this.form.querySelectorAll('input[name="queue_ids"]:checked')].map((box) => Number(box.value)),
      status: form.status.value,
      enabled: form.enabled.checked,
    };
  }

  async submit() {
    const button = byId("operator-submit");
    const box = byId("operator-error");
    clearErrors(this.form);
    const values = this.values();
    try {
      if (!this.editing) {
        const { status, enabled, ...body } = values;
        const created = await busy(button, () => this.api.post("/api/operators", body));
        this.state.put("operators", created);
        this.dialog.close();
        toast(`${created.name} can sign in as ${created.login}.`);
        return;
      }
      const op = this.editing;
      const body = {};
      for (const key of ["name", "role", "max_chats", "status", "enabled"]) {
        if (values[key] !== op[key]) body[key] = values[key];
      }
      if (op.id === this.state.me.id) delete body.enabled;
      if (values.queue_ids.join() !== [...op.queue_ids].sort((a, b) => a - b).join()) body.queue_ids = values.queue_ids;
      if (Object.keys(body).length) {
        this.state.put("operators", await busy(button, () => this.api.patch(`/api/operators/${op.id}`, body)));
        toast(`${values.name} is saved.`);
      }
      this.dialog.close();
    } catch (err) {
      showErrors(this.form, err, box);
    }
  }

  openPassword(op) {
    this.resetting = op;
    clearErrors(this.passwordForm);
    this.passwordForm.reset();
    byId("password-lead").textContent = op.id === this.state.me.id
      ? "Your sessions end with the change: you sign in again with the new password."
      : `${op.name} (${op.login}) signs in with the new password; their open sessions end.`;
    openDialog(this.passwordDialog);
    this.passwordForm.elements.password.focus();
  }

  async submitPassword() {
    const op = this.resetting;
    const password = this.passwordForm.elements.password.value;
    try {
      await this.api.patch(`/api/operators/${op.id}`, { password });
      if (op.id === this.state.me.id) {
        window.location.assign("/login?next=/settings");
        return;
      }
      this.passwordDialog.close();
      toast(`The password of ${op.name} is changed.`);
    } catch (err) {
      showErrors(this.passwordForm, err, null);
      if (!err.fields) toast(sentence(err.message), "error");
    }
  }
}
