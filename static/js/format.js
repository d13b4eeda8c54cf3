// Times, sizes, initials and colours for people.

const locale = navigator.language || "en";
const timeFmt = new Intl.DateTimeFormat(locale, { hour: "numeric", minute: "2-digit" });
const weekdayFmt = new Intl.DateTimeFormat(locale, { weekday: "short" });
const shortDateFmt = new Intl.DateTimeFormat(locale, { day: "numeric", month: "short" });
const longDateFmt = new Intl.DateTimeFormat(locale, { weekday: "long", day: "numeric", month: "long", year: "numeric" });
const fullFmt = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" });

export function parseTime(iso) {
  return iso ? new Date(iso) : null;
}

function startOfDay(date) {
  const d = new Date(date);
  d.setHours(0, 0, 0, 0);
  return d;
}

/** Return the local day key of a time (for day separators). */
export function dayKey(date) {
  return `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;
}

/** A list time: 14:05 today, a weekday this week, a date before. */
export function listTime(iso) {
  const date = parseTime(iso);
  if (!date) return "";
  const today = startOfDay(new Date());
  const days = Math.round((today - startOfDay(date)) / 86400000);
  if (days <= 0) return timeFmt.format(date);
  if (days === 1) return "Yesterday";
  if (days < 7) return weekdayFmt.format(date);
  return shortDateFmt.format(date);
}

/** A day separator label: Today, Yesterday, or the full date. */
export function dayLabel(date) {
  const today = startOfDay(new Date());
  const days = Math.round((today - startOfDay(date)) / 86400000);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  return longDateFmt.format(date);
}

export function clock(iso) {
  const date = parseTime(iso);
  return date ? timeFmt.format(date) : "";
}

export function fullTime(iso) {
  const date = parseTime(iso);
  return date ? fullFmt.format(date) : "";
}

export function fileSize(bytes) {
  if (bytes == null || !Number.isFinite(bytes)) return "";
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** Up to two initials of a name (letters of any script). */
export function initials(name) {
  const words = String(name || "").trim().split(/\s+/).filter(Boolean);
  const letters = words.slice(0, 2).map((w) => Array.from(w)[0] || "");
  return letters.join("").toUpperCase() || "?";
}

/** A stable hue class (0..7) for a person, so each keeps their colour. */
export function hueOf(key) {
  let hash = 0;
  for (const ch of String(key)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return hash % 8;
}

/** Return the name to show for a contact. */
export function contactName(contact) {
  if (!contact) return "Unknown";
  return contact.name || (contact.username ? `@${contact.username}` : `Customer ${contact.external_id || ""}`.trim());
}

export const PROVIDERS = { telegram: "Telegram", facebook: "Messenger" };

export function providerName(code) {
  return PROVIDERS[code] || (code ? code[0].toUpperCase() + code.slice(1) : "");
}

/** A short preview of a message for the chat list. */
export function preview(message) {
  if (!message) return "";
  const text = (message.text || "").replace(/\s+/g, " ").trim();
  const account = message.author && message.author.type === "system" && message.author.name;
  const prefix = message.direction !== "out" ? "" : account ? `${account}: ` : "You: ";
  if (text) return prefix + text;
  const kinds = { image: "Photo", video: "Video", audio: "Voice message", file: "File", sticker: "Sticker",
    location: "Location", contact: "Contact" };
  const first = (message.attachments || [])[0];
  if (first) return prefix + (first.kind === "file" && first.file_name ? first.file_name : kinds[first.kind] || "Attachment");
  return prefix;
}
