// Small DOM helpers shared by every view.

export const $ = (id) => document.getElementById(id);

// el builds an element: el("li", {className: "x", dataset: {id}}, child, "text", ...).
export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e[k] = v;
  }
  e.append(...children);
  return e;
}

export function button(text, className, onClick) {
  return el("button", { type: "button", textContent: text, className, onclick: onClick });
}

let toastTimer = null;
export function toast(msg, ms = 4000) {
  const t = $("toast");
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(hideToast, ms);
}

export function hideToast() {
  clearTimeout(toastTimer);
  $("toast").hidden = true;
}

// person is a list row for a user: name, city and id, then an action button.
export function person(u, action) {
  const who = el("span", { className: "who", textContent: u.first_name + " " + u.second_name + (u.city ? " · " + u.city : "") },
    el("small", { textContent: u.id }));
  return el("li", { dataset: { userId: u.id } }, who, action);
}

export function formatTime(iso) {
  const d = new Date(iso);
  return isNaN(d) ? "" : d.toLocaleString();
}

// copyText puts text on the clipboard; where the browser refuses (no secure context, no focus)
// it selects the text in node so that Ctrl+C copies it. Resolves to what happened.
export async function copyText(text, node) {
  try {
    await navigator.clipboard.writeText(text);
    return "copied";
  } catch {
    const range = document.createRange();
    range.selectNodeContents(node);
    const sel = getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    try {
      if (document.execCommand("copy")) return "copied";
    } catch { /* fall through */ }
    return "selected";
  }
}
