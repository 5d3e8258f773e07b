// The browser console: ask the portal for a single-use ticket, then let noVNC speak RFB over the
// portal's WebSocket proxy. No inline script (CSP); texts come from data- attributes (translated).
import RFB from "/static/vendor/@novnc/novnc/core/rfb.js";

const root = document.getElementById("console");
const text = (name) => root.dataset[name];
const statusEl = document.getElementById("status");
const message = document.getElementById("message");
const startButton = document.getElementById("start");
const reconnect = document.getElementById("reconnect");
const controls = ["ctrl-alt-del", "paste", "type"].map((id) => document.getElementById(id));
let rfb = null;

function csrfToken() {
  const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const body = document.body.getAttribute("hx-headers");
  try { return JSON.parse(body)["X-CSRFToken"]; } catch { return ""; }
}

function setStatus(label, kind) {
  statusEl.textContent = label;
  statusEl.className = `badge fs-6 text-bg-${kind}`;
  statusEl.dataset.state = kind;
}

function showMessage(label, offerStart) {
  document.getElementById("message-text").textContent = label;
  message.classList.remove("d-none");
  startButton.classList.toggle("d-none", !offerStart);
}

async function post(url) {
  return fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
  });
}

async function connect() {
  message.classList.add("d-none");
  reconnect.classList.add("d-none");
  setStatus(text("textConnecting"), "secondary");
  const response = await post(text("ticketUrl"));
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    setStatus(text("textFailed"), "danger");
    showMessage(body.message || response.statusText, body.code === "desktop_stopped");
    return;
  }
  if (body.protocol && body.protocol !== "rfb") {
    // A vCenter WebMKS ticket: noVNC speaks RFB only.
    setStatus(text("textFailed"), "warning");
    showMessage(text("textWebmks"), false);
    return;
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = body.websocket_url.startsWith("ws") ? body.websocket_url : `${scheme}://${location.host}${body.websocket_url}`;
  rfb = new RFB(document.getElementById("screen"), url, { wsProtocols: ["binary"] });
  rfb.scaleViewport = true;
  rfb.addEventListener("connect", () => {
    setStatus(text("textConnected"), "success");
    controls.forEach((el) => { el.disabled = false; });
  });
  rfb.addEventListener("disconnect", () => {
    setStatus(text("textDisconnected"), "warning");
    controls.forEach((el) => { el.disabled = true; });
    reconnect.classList.remove("d-none");
    rfb = null;
  });
}

async function startDesktop() {
  startButton.disabled = true;
  setStatus(text("textStarting"), "info");
  const response = await post(text("startUrl"));
  if (!response.ok && response.status !== 409) {
    const body = await response.json().catch(() => ({}));
    showMessage(body.message || response.statusText, true);
    startButton.disabled = false;
    return;
  }
  for (let i = 0; i < 60; i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const state = await fetch(text("desktopUrl"), { credentials: "same-origin" }).then((r) => r.json()).catch(() => ({}));
    if (state.state === "running") { startButton.disabled = false; connect(); return; }
  }
  startButton.disabled = false;
}

document.getElementById("ctrl-alt-del").addEventListener("click", () => rfb && rfb.sendCtrlAltDel());
document.getElementById("paste-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (rfb) rfb.clipboardPasteFrom(document.getElementById("paste-text").value);
});
document.getElementById("type").addEventListener("click", () => {
  // QEMU's VNC has no clipboard without a guest agent: type the text key by key instead.
  if (!rfb) return;
  for (const ch of document.getElementById("paste-text").value) {
    const code = ch.codePointAt(0);
    const keysym = ch === "\n" ? 0xff0d : code < 0x100 ? code : 0x01000000 + code;
    rfb.sendKey(keysym, null, true);
    rfb.sendKey(keysym, null, false);
  }
});
startButton.addEventListener("click", startDesktop);
reconnect.addEventListener("click", connect);
connect();
