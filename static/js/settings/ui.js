// Small pieces the settings sections share: toasts, dialogs, per-field errors, copying, confirming.
// Text always goes in with textContent (dom.js), never as HTML.

import { byId, el, icon } from "../dom.js";

/** Show a short message at the bottom of the page. */
export function toast(text, kind = "info") {
  const node = el("div", { class: `toast toast-${kind}` }, el("span", { text }));
  byId("toasts").append(node);
  setTimeout(() => node.classList.add("is-leaving"), 3500);
  setTimeout(() => node.remove(), 4000);
}

/** Remove every error shown in ``form``. */
export function clearErrors(form) {
  for (const field of form.querySelectorAll(".has-error")) field.classList.remove("has-error");
  for (const node of form.querySelectorAll(".field-error")) {
    node.textContent = "";
    node.hidden = true;
  }
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  for (const box of form.querySelectorAll(".alert-error")) box.hidden = true;
}

/** Show one field's error under it; return whether the form has such a field. */
export function showFieldError(form, name, message) {
  const field = form.querySelector(`[data-field="${CSS.escape(name)}"]`);
  if (!field) return false;
  field.classList.add("has-error");
  const node = field.querySelector(".field-error");
  if (node) {
    node.textContent = sentence(message);
    node.hidden = false;
  }
  const input = field.querySelector("input, select, textarea");
  if (input) input.setAttribute("aria-invalid", "true");
  return true;
}

/**
 * Show an API error on a form: each ``error.fields`` entry under its field, the rest (and the
 * message when no field matched) in the form's alert box. Focus the first field in error.
 */
export function showErrors(form, err, box) {
  clearErrors(form);
  const fields = err.fields || {};
  const unmatched = [];
  for (const [name, message] of Object.entries(fields)) {
    if (!showFieldError(form, name, message)) unmatched.push(message);
  }
  const first = form.querySelector(".has-error input, .has-error select");
  if (first) first.focus();
  if (box && (unmatched.length || !Object.keys(fields).length || err.code === "cannot_connect")) {
    box.textContent = unmatched.length && err.status === 400 ? sentence(unmatched.join("; ")) : sentence(err.message);
    box.hidden = false;
  }
}

/** Return ``text`` with a capital first letter and a full stop. */
export function sentence(text) {
  const value = String(text || "").trim();
  if (!value) return "";
  const capital = value[0].toUpperCase() + value.slice(1);
  return /[.!?…]$/.test(capital) ? capital : `${capital}.`;
}

/** Open a <dialog> as a modal; buttons marked data-close close it. */
export function openDialog(dialog) {
  if (!dialog.dataset.wired) {
    dialog.dataset.wired = "1";
    for (const button of dialog.querySelectorAll("[data-close]")) button.addEventListener("click", () => dialog.close());
  }
  if (!dialog.open) dialog.showModal();
}

/** Disable ``button`` while ``work`` runs; return its result. */
export async function busy(button, work, label) {
  const before = label ? button.textContent : null;
  button.disabled = true;
  button.classList.add("is-busy");
  if (label) button.textContent = label;
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.classList.remove("is-busy");
    if (label) button.textContent = before;
  }
}

/** Copy ``text`` to the clipboard (the older way where the page is not a secure context). */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (err) {
      // fall through to the older way
    }
  }
  const area = el("textarea", { class: "copy-buffer", readonly: true });
  area.value = text;
  document.body.append(area);
  area.select();
  let done = false;
  try {
    done = document.execCommand("copy");
  } catch (err) {
    done = false;
  }
  area.remove();
  return done;
}

/** Return a "Copy" button that copies ``value()``. */
export function copyButton(value, label = "Copy") {
  const button = el("button", { type: "button", class: "btn btn-sm copy-button" }, icon("copy"), el("span", { text: label }));
  button.addEventListener("click", async () => {
    const ok = await copyText(value());
    button.lastChild.textContent = ok ? "Copied" : "Select and copy";
    button.classList.toggle("is-done", ok);
    setTimeout(() => {
      button.lastChild.textContent = label;
      button.classList.remove("is-done");
    }, 1600);
  });
  return button;
}

/** Return a read-only text box with a copy button, for a URL or a token to paste elsewhere. */
export function copyField(value, { label, testid } = {}) {
  const input = el("input", { type: "text", class: "copy-input", readonly: true, spellcheck: "false",
                              "aria-label": label || "Value", "data-testid": testid });
  input.value = value;
  input.addEventListener("focus", () => input.select());
  return el("div", { class: "copy-field" }, input, copyButton(() => input.value));
}

/**
 * Ask before a destructive step. ``run`` does it and may throw an ApiError, shown in the dialog;
 * ``alt`` is an optional second way out ({label, run}), offered when ``run`` failed with a 409.
 */
export function confirmAction({ title, text, ok, run, alt, danger = true }) {
  const dialog = byId("confirm-dialog");
  const okButton = byId("confirm-ok");
  const altButton = byId("confirm-alt");
  const error = byId("confirm-error");
  byId("confirm-title").textContent = title;
  byId("confirm-text").textContent = text;
  okButton.textContent = ok;
  okButton.className = danger ? "btn btn-danger" : "btn btn-primary";
  okButton.hidden = false;
  okButton.disabled = false;
  altButton.hidden = true;
  error.hidden = true;
  const controller = new AbortController();
  const done = () => { controller.abort(); dialog.close(); };
  byId("confirm-cancel").addEventListener("click", done, { signal: controller.signal });
  dialog.addEventListener("close", () => controller.abort(), { signal: controller.signal });
  byId("confirm-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await busy(okButton, run);
      done();
    } catch (err) {
      error.textContent = sentence(err.message);
      error.hidden = false;
      if (alt && err.status === 409) {
        okButton.hidden = true;
        altButton.textContent = alt.label;
        altButton.hidden = false;
        altButton.focus();
      }
    }
  }, { signal: controller.signal });
  if (alt) {
    altButton.addEventListener("click", async () => {
      try {
        await busy(altButton, alt.run);
        done();
      } catch (err) {
        error.textContent = sentence(err.message);
        error.hidden = false;
      }
    }, { signal: controller.signal });
  }
  dialog.showModal();
}

/** Return a pill: ``kind`` is ok, warn, bad or muted. */
export function pill(text, kind = "muted", testid) {
  return el("span", { class: `pill pill-${kind}`, text, "data-testid": testid });
}

/** Return an on/off switch (a checkbox styled as one) that calls ``onChange(checked)``. */
export function toggle(checked, label, onChange) {
  const input = el("input", { type: "checkbox", class: "switch", "aria-label": label });
  input.checked = checked;
  input.addEventListener("change", async () => {
    input.disabled = true;
    try {
      await onChange(input.checked);
    } catch (err) {
      input.checked = !input.checked;
      toast(sentence(err.message), "error");
    } finally {
      input.disabled = false;
    }
  });
  return input;
}
