// Avatars: the contact's picture when the desk has one, else initials on a colour of their own.

import { icon } from "./dom.js";
import { contactName, hueOf, initials, providerName } from "./format.js";

const BRAND_ICONS = ["telegram", "facebook"];

/** Fill an .avatar element for a contact (or an operator: {name}). */
export function fillAvatar(api, node, person, provider) {
  const name = person ? contactName(person) : "?";
  const key = person ? `${person.id}:${name}` : "?";
  if (node.dataset.key === key + (person && person.avatar_url ? "+img" : "")) return;
  node.dataset.key = key + (person && person.avatar_url ? "+img" : "");
  for (let i = 0; i < 8; i++) node.classList.remove(`hue-${i}`);
  node.classList.add(`hue-${hueOf(key)}`);
  const label = node.querySelector(".avatar-initials");
  label.textContent = initials(name);
  const old = node.querySelector("img");
  if (old) old.remove();
  if (person && person.avatar_url) {
    api.fileUrl(person.avatar_url).then((url) => {
      if (node.dataset.key !== key + "+img") return;
      const img = document.createElement("img");
      img.alt = "";
      img.addEventListener("error", () => img.remove());
      img.src = url;
      node.prepend(img);
    }, () => {});
  }
  const badge = node.querySelector(".provider-badge");
  if (badge) {
    badge.replaceChildren();
    badge.className = "provider-badge";
    if (provider) {
      badge.classList.add(`provider-${provider}`);
      badge.title = providerName(provider);
      badge.append(icon(BRAND_ICONS.includes(provider) ? provider : "chat", "icon icon-brand"));
    }
  }
}
