// Embedding and transcript: the origins that may frame the desk, the embed secret (shown and
// rotatable), the transcript URL and its signing secret. Secrets come from GET /api/settings only.

import { byId, el, icon } from "../dom.js";
import { busy, clearErrors, confirmAction, copyText, showErrors, toast } from "./ui.js";

/** Return ``value`` as an origin (scheme://host[:port]) or null. */
function asOrigin(value) {
  try {
    const url = new URL(value.trim());
    if (!["http:", "https:"].includes(url.protocol) || (url.pathname !== "/" && url.pathname !== "") || url.search || url.hash) return null;
    return url.origin;
  } catch (err) {
    return null;
  }
}

function secretBox(input, showButton, copyButton) {
  showButton.addEventListener("click", () => {
    const shown = input.type === "text";
    input.type = shown ? "password" : "text";
    showButton.setAttribute("aria-pressed", String(!shown));
    showButton.title = shown ? "Show the secret" : "Hide the secret";
  });
  copyButton.addEventListener("click", async () => {
    const ok = await copyText(input.value);
    toast(ok ? "Copied." : "Copying failed: show the secret and copy it by hand.", ok ? "info" : "error");
  });
}

export class Embedding {
  constructor({ api }) {
    this.api = api;
    this.settings = null;
    this.origins = [];
    this.originsForm = byId("origins-form");
    this.transcriptForm = byId("transcript-form");

    byId("origin-add").addEventListener("click", () => this.addOrigin());
    byId("origin-input").addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        this.addOrigin();
      }
    });
    this.originsForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.saveOrigins();
    });
    this.transcriptForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.saveTranscript();
    });
    secretBox(byId("embed-secret"), byId("embed-secret-show"), byId("embed-secret-copy"));
    secretBox(byId("transcript-secret"), byId("transcript-secret-show"), byId("transcript-secret-copy"));
    byId("embed-secret-rotate").addEventListener("click", () => this.rotate());
    byId("transcript-url").addEventListener("input", () => { byId("transcript-saved").hidden = true; });
  }

  async load() {
    this.show(await this.api.get("/api/settings"));
  }

  show(settings) {
    this.settings = settings;
    this.origins = [...settings.embed_origins];
    this.renderOrigins();
    this.setDirty(false);
    byId("embed-secret").value = settings.embed_secret;
    byId("embed-secret-rotate").disabled = settings.embed_secret_from_env;
    byId("embed-secret-env").hidden = !settings.embed_secret_from_env;
    byId("transcript-url").value = settings.transcript_url || "";
    byId("transcript-secret").value = settings.transcript_secret;
  }

  renderOrigins() {
    const rows = [];
    for (const origin of this.settings.embed_origins_from_env) {
      rows.push(el("li", { class: "origin is-locked" }, el("code", { text: origin }),
        el("span", { class: "origin-note", text: "from --embed-origins" })));
    }
    for (const origin of this.origins) {
      rows.push(el("li", { class: "origin", "data-testid": "origin" }, el("code", { text: origin }),
        el("button", { type: "button", class: "icon-button icon-button-sm", title: `Remove ${origin}`, onclick: () => {
          this.origins = this.origins.filter((o) => o !== origin);
          this.renderOrigins();
          this.setDirty(true);
        } }, icon("x"), el("span", { class: "sr-only", text: `Remove ${origin}` }))));
    }
    if (!rows.length) rows.push(el("li", { class: "origin is-empty", text: "No origin: no site may frame the desk." }));
    byId("origin-list").replaceChildren(...rows);
  }

  setDirty(dirty) {
    byId("origins-save").disabled = !dirty;
    if (dirty) byId("origins-saved").hidden = true;
  }

  addOrigin() {
    const input = byId("origin-input");
    clearErrors(this.originsForm);
    if (!input.value.trim()) return;
    const origin = asOrigin(input.value);
    if (!origin) {
      showErrors(this.originsForm, { fields: { embed_origins: "an origin is a scheme and a host, such as https://intranet.example.com" } }, null);
      return;
    }
    if (!this.origins.includes(origin)) this.origins.push(origin);
    input.value = "";
    this.renderOrigins();
    this.setDirty(true);
  }

  async saveOrigins() {
    // A typed origin not yet added counts as added: saving is what the admin meant.
    if (byId("origin-input").value.trim()) this.addOrigin();
    if (this.originsForm.querySelector(".has-error")) return;
    try {
      const settings = await busy(byId("origins-save"), () => this.api.patch("/api/settings", { embed_origins: this.origins }));
      this.show(settings);
      byId("origins-saved").hidden = false;
    } catch (err) {
      showErrors(this.originsForm, err, null);
    }
  }

  async saveTranscript() {
    clearErrors(this.transcriptForm);
    const url = byId("transcript-url").value.trim();
    try {
      const button = this.transcriptForm.querySelector("button[type=submit]");
      const settings = await busy(button, () => this.api.patch("/api/settings", { transcript_url: url || null }));
      this.show(settings);
      byId("transcript-saved").hidden = false;
    } catch (err) {
      showErrors(this.transcriptForm, err, null);
    }
  }

  rotate() {
    confirmAction({
      title: "Rotate the embed secret?",
      text: "Embed links signed with the current secret stop working at once. Put the new secret in your intranet right after.",
      ok: "Rotate",
      run: async () => {
        this.show(await this.api.post("/api/settings/embed-secret"));
        const input = byId("embed-secret");
        input.type = "text";
        byId("embed-secret-show").setAttribute("aria-pressed", "true");
        toast("A new embed secret is in use.");
      },
    });
  }
}
