// The console's one script. Every page works without it (plain forms); it adds keyboard
// moves, live countdowns, and live updates of the inbox (server-sent events, no polling).
// No inline script anywhere: the Content-Security-Policy allows only this file.
"use strict";

(function () {
  // Shown after sign-out by Back from the browser's page cache: fetch it again instead,
  // which sends a signed-out browser to the login page.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) window.location.reload();
  });

  function requests() {
    return Array.prototype.slice.call(document.querySelectorAll("li.request"));
  }

  var selectedId = null;

  function select(item, focus) {
    requests().forEach(function (other) { other.classList.toggle("selected", other === item); });
    selectedId = item ? item.dataset.id : null;
    if (item && focus) {
      item.focus({ preventScroll: true });
      item.scrollIntoView({ block: "nearest" });
    }
  }

  function selected() {
    return requests().find(function (item) { return item.dataset.id === selectedId; }) || null;
  }

  function move(step) {
    var items = requests();
    if (!items.length) return;
    var index = items.indexOf(selected());
    var next = index < 0 ? 0 : Math.min(items.length - 1, Math.max(0, index + step));
    select(items[next], true);
  }

  // Opens the approve or reject step of the selected request: its confirm button (or the
  // reason) gets the focus, so Enter confirms and nothing is decided by one key alone.
  function open(kind) {
    var item = selected() || requests()[0];
    if (!item) return;
    select(item, false);
    var details = item.querySelector("details.decide." + kind);
    if (!details) return;
    item.querySelectorAll("details.decide").forEach(function (d) { d.open = d === details; });
    var target = details.querySelector(kind === "reject" ? "textarea" : "button");
    if (target) target.focus();
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var tag = event.target && event.target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "a": open("approve"); break;
      case "r": open("reject"); break;
      case "Escape":
        document.querySelectorAll("details.decide[open]").forEach(function (d) { d.open = false; });
        break;
      default: return;
    }
    event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    var item = event.target.closest && event.target.closest("li.request");
    if (item) select(item, false);
  });

  // ---- countdowns ---------------------------------------------------------------------
  function human(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24,
        m = Math.floor(seconds / 60) % 60, s = seconds % 60;
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + two(m) + "m";
    if (m > 0) return m + "m " + two(s) + "s";
    return s + "s";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("time.since").forEach(function (t) {
      t.textContent = human((now - Date.parse(t.getAttribute("datetime"))) / 1000);
    });
    document.querySelectorAll("time.until").forEach(function (t) {
      var left = (Date.parse(t.getAttribute("datetime")) - now) / 1000;
      t.textContent = left > 0 ? "in " + human(left) : "expired";
      t.classList.toggle("soon", left > 0 && left < 300);
    });
  }
  setInterval(tick, 1000);

  // ---- live updates -------------------------------------------------------------------
  var inbox = document.getElementById("inbox");
  var status = document.getElementById("live-status");
  if (!inbox || !window.EventSource) return;

  function setStatus(text) { if (status) status.textContent = text; }

  // What a person is in the middle of survives a refresh: the selection, an open
  // approve/reject step, a reason being typed, the focused field.
  function remember() {
    var state = { open: [], reasons: {}, focus: document.activeElement ? document.activeElement.id : null };
    inbox.querySelectorAll("details[open]").forEach(function (d) {
      var item = d.closest("li.request");
      if (item) state.open.push(item.dataset.id + " " + d.className);
    });
    inbox.querySelectorAll("textarea").forEach(function (t) { if (t.value) state.reasons[t.id] = t.value; });
    return state;
  }

  function restore(state) {
    inbox.querySelectorAll("details").forEach(function (d) {
      var item = d.closest("li.request");
      if (item && state.open.indexOf(item.dataset.id + " " + d.className) >= 0) d.open = true;
    });
    Object.keys(state.reasons).forEach(function (id) {
      var t = document.getElementById(id);
      if (t) t.value = state.reasons[id];
    });
    var item = selected();
    select(item, false);
    if (state.focus) {
      var focused = document.getElementById(state.focus);
      if (focused) focused.focus({ preventScroll: true });
    }
  }

  var refreshing = false, again = false;
  function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch("/console/inbox", { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.status === 401) {
          window.location.assign("/login?expired=1");
          return null;
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        if (html === null) return;
        var state = remember();
        inbox.innerHTML = html;
        restore(state);
        tick();
        inbox.dispatchEvent(new CustomEvent("inbox-refreshed", { bubbles: true }));
      })
      .catch(function () { setStatus("update failed; reload the page"); })
      .then(function () {
        refreshing = false;
        if (again) { again = false; refresh(); }
      });
  }

  // From the position the page was rendered at; after a reconnect the browser's
  // Last-Event-ID takes over.
  var events = new EventSource("/console/events?since=" + encodeURIComponent(inbox.dataset.since || "-1"));
  events.addEventListener("open", function () { setStatus("live"); });
  events.addEventListener("changed", refresh);
  events.addEventListener("error", function () { setStatus("reconnecting…"); });
})();

// ---- Agents and MCP servers pages: the copy button of a freshly minted token --------
// The button is `hidden` in the page (it needs this script); the token stays selectable
// text either way.
(function () {
  document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.dataset.copy);
    if (!source) return;
    var said = button.parentElement && button.parentElement.querySelector(".copied");
    button.hidden = false;
    button.addEventListener("click", function () {
      var done = function () { if (said) said.textContent = "Copied."; };
      source.select();
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(source.value).then(done, function () {
          if (document.execCommand("copy")) done();
        });
      } else if (document.execCommand("copy")) {
        done();
      }
    });
  });
})();

// ---- copy buttons (inbox, request page) -----------------------------------------------
// A "Copy" button beside each argument's value, added by this script only: without it the
// value is selectable text, and a button that cannot work is not shown.
(function () {
  if (!navigator.clipboard) return;

  function addCopyButtons(root) {
    root.querySelectorAll("dl.arguments > dd").forEach(function (dd) {
      if (dd.querySelector("button.copy")) return;
      var pre = dd.querySelector("pre");
      if (!pre) return;
      var dt = dd.previousElementSibling;
      var name = dt ? dt.textContent : "";
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy";
      button.textContent = "Copy";
      button.setAttribute("aria-label", "Copy the value of " + (name || "the arguments"));
      var said = document.createElement("span");
      said.className = "copied";
      said.setAttribute("role", "status");
      button.addEventListener("click", function (event) {
        event.stopPropagation();
        navigator.clipboard.writeText(pre.textContent).then(function () {
          said.textContent = "Copied";
        }, function () {
          said.textContent = "Copy failed: select the text instead";
        }).then(function () {
          setTimeout(function () { said.textContent = ""; }, 2500);
        });
      });
      dd.appendChild(button);
      dd.appendChild(said);
    });
  }

  function start() { addCopyButtons(document); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
  document.addEventListener("inbox-refreshed", start);
})();

// ---- a reason in flight survives an ended session ------------------------------------
// A decision posted after the session ended is not done (the login page says so). What
// the person typed as a reason is kept for this tab (sessionStorage, never a secret) and
// put back into the same request's form once they are signed in again, opened, to
// submit again by hand.
(function () {
  var KEY = "alexandria-unsaved-reason";
  var store;
  try { store = window.sessionStorage; } catch (e) { return; }
  if (!store) return;
  document.addEventListener("submit", function (event) {
    var reason = event.target.querySelector && event.target.querySelector("textarea[name=reason]");
    if (reason && reason.value) {
      store.setItem(KEY, JSON.stringify({action: event.target.getAttribute("action"), reason: reason.value}));
    }
  }, true);
  var saved = store.getItem(KEY);
  if (!saved) return;
  var onLogin = location.pathname === "/login";
  if (onLogin) {
    // Kept only when the post was refused for the ended session.
    if (!/[?&]unsaved=1/.test(location.search)) store.removeItem(KEY);
    return;
  }
  store.removeItem(KEY);
  var entry;
  try { entry = JSON.parse(saved); } catch (e) { return; }
  var restore = function () {
    var form = Array.prototype.find.call(document.querySelectorAll("form"), function (f) {
      return f.getAttribute("action") === entry.action;
    });
    var reason = form && form.querySelector("textarea[name=reason]");
    if (!reason) return;
    reason.value = entry.reason;
    var details = form.closest("details");
    if (details) details.open = true;
    reason.focus();
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", restore);
  else restore();
})();
