// Channels, like a config flow: pick a provider, fill the fields it declares, let Desk check them
// with the messenger, see the webhook registered. Secrets are password inputs, never shown back.

import { byId, el, icon } from "../dom.js";
import { fullTime } from "../format.js";
import {
  busy, clearErrors, confirmAction, copyField, openDialog, pill, sentence, showErrors, toast, toggle,
} from "./ui.js";

// What the admin does by hand at the messenger, where the desk cannot (UI copy, by provider code).
const HINTS = {
  facebook: "In your Meta app's dashboard, under Webhooks, set this callback URL and the verify token, then subscribe the page to messages.",
  telegram: "Telegram sends the bot's updates to this address; Desk set it with the channel's own secret.",
  api: "Your system posts signed JSON to this address and receives replies at its callback URL (docs/providers.md).",
};

function providerIcon(code) {
  const node = el("span", { class: `provider-icon provider-${code}` });
  node.append(icon(document.getElementById(`i-${code}`) ? code : "link"));
  return node;
}

export class Channels {
  constructor({ api, state }) {
    this.api = api;
    this.state = state;
    this.list = byId("channel-list");
    this.empty = byId("channel-empty");
    this.dialog = byId("channel-dialog");
    this.form = byId("channel-form");
    this.configs = new Map();  // channel id -> its non-secret settings
    this.health = new Map();  // channel id -> last health answer (or an error)
    this.editing = null;
    this.provider = null;

    byId("channel-add").addEventListener("click", () => this.openConnect());
    byId("channel-cancel").addEventListener("click", () => this.dialog.close());
    byId("channel-done").addEventListener("click", () => this.dialog.close());
    byId("channel-back").addEventListener("click", () => this.step("provider"));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    state.addEventListener("change", (event) => {
      if (["channels", "queues", "providers"].includes(event.detail)) this.render();
    });
  }

  /** Load each channel's settings and health, then draw the list. */
  async load() {
    await Promise.all(this.state.channels.map((channel) => this.loadConfig(channel.id)));
    this.render();
    for (const channel of this.state.channels) if (channel.enabled) this.checkHealth(channel.id);
  }

  async loadConfig(id) {
    try {
      this.configs.set(id, await this.api.get(`/api/channels/${id}/config`));
    } catch (err) {
      this.configs.set(id, {});
    }
  }

  async checkHealth(id) {
    this.health.set(id, { checking: true });
    this.renderHealth(id);
    try {
      this.health.set(id, await this.api.get(`/api/channels/${id}/health`));
    } catch (err) {
      this.health.set(id, { ok: false, last_error: err.message });
    }
    this.renderHealth(id);
  }

  // ---- the list

  render() {
    const channels = this.state.channels;
    byId("count-channels").textContent = channels.length ? String(channels.length) : "";
    this.empty.hidden = channels.length > 0;
    this.list.replaceChildren(...channels.map((channel) => this.card(channel)));
  }

  card(channel) {
    const provider = this.state.provider(channel.provider);
    const queue = this.state.queueName(channel.queue_id);
    const status = !channel.enabled
      ? pill("Disabled", "muted", "channel-status")
      : channel.registered ? pill("Registered", "ok", "channel-status") : pill("Not registered", "bad", "channel-status");

    const facts = el("dl", { class: "facts-grid" });
    const fact = (term, ...value) => facts.append(el("dt", { text: term }), el("dd", {}, ...value));
    fact("Webhook URL", copyField(channel.webhook_url, { label: "Webhook URL", testid: "webhook-url" }));
    const config = this.configs.get(channel.id) || {};
    for (const field of provider ? provider.fields : []) {
      if (field.secret || !config[field.name]) continue;
      fact(field.label, copyField(config[field.name], { label: field.label }));
    }
    if (channel.registration_error) {
      fact("Registration", el("span", { class: "text-bad", text: sentence(channel.registration_error), "data-testid": "registration-error" }));
    }
    if (channel.enabled) fact("Webhook health", el("span", { class: "health", "data-health-for": channel.id }));

    const actions = el("div", { class: "card-actions" },
      el("button", { type: "button", class: "btn btn-sm", onclick: () => this.openEdit(channel) }, icon("edit"), el("span", { text: "Edit" })),
      channel.enabled ? el("button", { type: "button", class: "btn btn-sm", onclick: (e) => this.reregister(channel, e.currentTarget) }, icon("retry"), el("span", { text: "Register again" })) : null,
      channel.enabled ? el("button", { type: "button", class: "btn btn-sm", onclick: () => this.checkHealth(channel.id) }, icon("activity"), el("span", { text: "Check health" })) : null,
      el("span", { class: "spacer" }),
      el("button", { type: "button", class: "btn btn-sm btn-ghost btn-ghost-danger", onclick: () => this.remove(channel) }, icon("trash"), el("span", { text: "Delete" })),
    );

    const card = el("article", { class: `card channel-card${channel.enabled ? "" : " is-disabled"}`, dataset: { channelId: channel.id }, "data-testid": "channel" },
      el("div", { class: "card-top" },
        providerIcon(channel.provider),
        el("div", { class: "card-title" },
          el("h2", { text: channel.name }),
          el("p", { class: "card-sub", text: [provider ? provider.name : channel.provider, queue ? `Queue: ${queue}` : "No queue"].join(" · ") })),
        status,
        el("label", { class: "switch-label", title: channel.enabled ? "Disable: the webhook is removed" : "Enable: the webhook is registered again" },
          toggle(channel.enabled, "Enabled", (on) => this.setEnabled(channel, on)),
          el("span", { text: channel.enabled ? "On" : "Off" }))),
      facts, actions);
    queueMicrotask(() => this.renderHealth(channel.id));
    return card;
  }

  renderHealth(id) {
    const node = this.list.querySelector(`[data-health-for="${id}"]`);
    if (!node) return;
    const health = this.health.get(id);
    if (!health || health.checking) {
      node.replaceChildren(el("span", { class: "muted", text: "Checking…" }));
      return;
    }
    const parts = [pill(health.ok ? "Healthy" : "Problem", health.ok ? "ok" : "bad", "health-status")];
    if (health.pending !== null && health.pending !== undefined) {
      parts.push(el("span", { class: "health-fact", "data-testid": "health-pending",
                              text: `${health.pending} pending update${health.pending === 1 ? "" : "s"}` }));
    }
    for (const [key, value] of Object.entries(health.detail || {})) {
      if (key === "url" || value === null || value === "" || (Array.isArray(value) && !value.length)) continue;
      const text = Array.isArray(value) ? value.join(", ") : String(value);
      parts.push(el("span", { class: "health-fact", text: `${key.replaceAll("_", " ")}: ${text}` }));
    }
    if (health.last_error) {
      const when = health.last_error_at ? ` (${fullTime(health.last_error_at)})` : "";
      parts.push(el("span", { class: "health-fact text-bad", text: `Last error: ${health.last_error}${when}` }));
    }
    node.replaceChildren(...parts);
  }

  async setEnabled(channel, on) {
    const changed = await this.api.patch(`/api/channels/${channel.id}`, { enabled: on });
    this.state.put("channels", changed);
    if (on) {
      toast(changed.registered ? `${changed.name} is on: its webhook is registered.` : `${changed.name} is on, but its webhook is not registered.`,
            changed.registered ? "info" : "error");
      this.checkHealth(changed.id);
    } else {
      toast(`${changed.name} is off: its webhook is removed.`);
    }
  }

  async reregister(channel, button) {
    try {
      const changed = await busy(button, () => this.api.post(`/api/channels/${channel.id}/register`));
      this.state.put("channels", changed);
      toast(changed.registered ? "The webhook is registered." : `Not registered: ${changed.registration_error}`,
            changed.registered ? "info" : "error");
      this.checkHealth(changed.id);
    } catch (err) {
      toast(sentence(err.message), "error");
    }
  }

  remove(channel) {
    confirmAction({
      title: `Delete ${channel.name}?`,
      text: "Its webhook is removed from the messenger. A channel that has had chats cannot be deleted: disable it instead.",
      ok: "Delete",
      run: async () => {
        await this.api.del(`/api/channels/${channel.id}`);
        this.state.remove("channels", channel.id);
        toast(`${channel.name} is deleted.`);
      },
      alt: channel.enabled ? {
        label: "Disable it instead",
        run: async () => this.setEnabled(channel, false),
      } : null,
    });
  }

  // ---- the flow: provider, fields, result

  step(name) {
    for (const node of this.form.querySelectorAll(".flow-step")) node.hidden = node.dataset.step !== name;
    byId("channel-back").hidden = !(name === "fields" && !this.editing);
    byId("channel-submit").hidden = name !== "fields";
    byId("channel-cancel").hidden = name === "result";
    byId("channel-done").hidden = name !== "result";
    if (name === "fields") {
      const first = this.form.querySelector('.flow-step[data-step="fields"] input:not([type=hidden])');
      if (first && !this.editing) first.focus();
    }
  }

  openConnect() {
    this.editing = null;
    this.provider = null;
    clearErrors(this.form);
    this.form.reset();
    byId("channel-dialog-title").textContent = "Connect a channel";
    byId("channel-submit").textContent = "Connect";
    const grid = byId("provider-grid");
    grid.replaceChildren(...this.state.providers.map((provider) => el("button", {
      type: "button", class: "provider-choice", role: "radio", "aria-checked": "false", dataset: { provider: provider.code },
      onclick: () => this.chooseProvider(provider),
    }, providerIcon(provider.code), el("span", { class: "provider-choice-name", text: provider.name }))));
    this.step("provider");
    openDialog(this.dialog);
  }

  async openEdit(channel) {
    const provider = this.state.provider(channel.provider);
    if (!provider) {
      toast("The provider of this channel is not installed.", "error");
      return;
    }
    this.editing = channel;
    clearErrors(this.form);
    this.form.reset();
    byId("channel-dialog-title").textContent = `Edit ${channel.name}`;
    byId("channel-submit").textContent = "Save";
    await this.loadConfig(channel.id);
    this.chooseProvider(provider, channel, this.configs.get(channel.id) || {});
    openDialog(this.dialog);
  }

  chooseProvider(provider, channel = null, config = {}) {
    this.provider = provider;
    byId("channel-provider").replaceChildren(providerIcon(provider.code), el("span", { text: provider.name }));
    const select = byId("channel-queue");
    select.replaceChildren(...this.state.queues.map((q) => el("option", { value: q.id, text: q.name })));
    if (!this.state.queues.length) select.append(el("option", { value: "", text: "No queue" }));
    this.form.elements.name.value = channel ? channel.name : "";
    if (channel && channel.queue_id) select.value = String(channel.queue_id);
    byId("provider-fields").replaceChildren(...provider.fields.map((field) => this.fieldInput(field, channel, config)));
    this.step("fields");
  }

  fieldInput(field, channel, config) {
    const editing = Boolean(channel);
    const input = el("input", {
      name: `config.${field.name}`,
      type: field.secret ? "password" : field.type === "url" ? "url" : "text",
      // A secret is never filled in again: an empty box on an edit keeps the stored one.
      autocomplete: field.secret ? "new-password" : "off",
      spellcheck: "false",
      required: field.required && !(editing && field.secret),
      placeholder: field.secret && editing ? "Unchanged (type a new one to replace it)" : field.required ? null : "Optional: leave empty for the default",
    });
    if (!field.secret && config[field.name]) input.value = config[field.name];
    input.dataset.initial = input.value;
    const label = el("span", { class: "field-label" }, document.createTextNode(field.label));
    if (!field.required) label.append(el("span", { class: "field-optional", text: "optional" }));
    return el("label", { class: "field", dataset: { field: `config.${field.name}` } },
      label, input, el("span", { class: "field-error", hidden: true }));
  }

  /** Return the request body: everything for a new channel, only what changed for an edit. */
  body() {
    const form = this.form.elements;
    const config = {};
    for (const field of this.provider.fields) {
      const input = form[`config.${field.name}`];
      const value = input.value.trim();
      if (this.editing ? (field.secret ? value !== "" : value !== input.dataset.initial) : value !== "") config[field.name] = value;
    }
    const queue = form.queue_id.value ? Number(form.queue_id.value) : null;
    if (!this.editing) {
      const body = { provider: this.provider.code, name: form.name.value.trim(), config };
      if (queue !== null) body.queue_id = queue;
      return body;
    }
    const body = {};
    if (form.name.value.trim() !== this.editing.name) body.name = form.name.value.trim();
    if (queue !== this.editing.queue_id) body.queue_id = queue;
    if (Object.keys(config).length) body.config = config;
    return body;
  }

  async submit() {
    const button = byId("channel-submit");
    const box = byId("channel-error");
    clearErrors(this.form);
    const body = this.body();
    try {
      if (this.editing) {
        if (!Object.keys(body).length) {
          this.dialog.close();
          return;
        }
        const changed = await busy(button, () => this.api.patch(`/api/channels/${this.editing.id}`, body), "Checking…");
        await this.loadConfig(changed.id);
        this.state.put("channels", changed);
        this.dialog.close();
        toast(`${changed.name} is saved.`);
        if (changed.enabled) this.checkHealth(changed.id);
        return;
      }
      const created = await busy(button, () => this.api.post("/api/channels", body), "Checking with the messenger…");
      await this.loadConfig(created.id);
      this.state.put("channels", created);
      this.showResult(created);
      if (created.enabled) this.checkHealth(created.id);
    } catch (err) {
      if (err.code === "invalid_credentials" && err.fields) {
        for (const key of Object.keys(err.fields)) err.fields[key] = `the messenger refused it: ${err.fields[key]}`;
      }
      showErrors(this.form, err, box);
    }
  }

  showResult(channel) {
    const ok = channel.registered;
    const provider = this.state.provider(channel.provider);
    const config = this.configs.get(channel.id) || {};
    const result = byId("channel-result");
    const facts = el("dl", { class: "facts-grid" },
      el("dt", { text: "Webhook URL" }), el("dd", {}, copyField(channel.webhook_url, { label: "Webhook URL", testid: "result-webhook-url" })));
    for (const field of provider ? provider.fields : []) {
      if (!field.secret && config[field.name]) facts.append(el("dt", { text: field.label }), el("dd", {}, copyField(config[field.name], { label: field.label })));
    }
    const hint = HINTS[channel.provider];
    result.replaceChildren(
      el("div", { class: `result-head ${ok ? "is-ok" : "is-bad"}`, "data-testid": "channel-result" },
        el("span", { class: "result-icon" }, icon(ok ? "check" : "alert")),
        el("div", {},
          el("p", { class: "result-title", text: ok ? `${channel.name} is connected` : `${channel.name} is saved, but not registered` }),
          el("p", { class: "result-text", text: ok ? "The messenger accepted the webhook. New chats arrive in the desk." : sentence(channel.registration_error || "The messenger refused the webhook.") }))),
      facts,
      hint ? el("p", { class: "field-hint", text: hint }) : null,
    );
    if (!ok) {
      result.append(el("button", { type: "button", class: "btn", onclick: async (e) => {
        const button = e.currentTarget;
        try {
          const changed = await busy(button, () => this.api.post(`/api/channels/${channel.id}/register`));
          this.state.put("channels", changed);
          this.showResult(changed);
        } catch (err) {
          toast(sentence(err.message), "error");
        }
      } }, icon("retry"), el("span", { text: "Register again" })));
    }
    this.step("result");
  }
}
