// Inbox behaviour that htmx does not cover: where the websocket resumes from,
// the "reconnecting…" state, keyboard navigation and relative times.
// Every DOM change from the server arrives as hx-swap-oob HTML; nothing here
// builds DOM from data.
(function () {
  "use strict";

  function viewParams() {
    var seq = document.getElementById("live-seq");
    var view = document.getElementById("live-view");
    var open = document.getElementById("live-conversation");
    var after = seq && seq.dataset.seq;
    // A thread just opened was rendered at its own sequence number; resume from
    // the lower one so nothing between that render and this socket is skipped.
    if (open && open.dataset.seq && after !== undefined && after !== "") {
      after = String(Math.min(Number(after), Number(open.dataset.seq)));
    }
    var params = new URLSearchParams({ after: after || "" });
    if (view) {
      ["platform", "status", "owner", "q"].forEach(function (key) {
        if (view.dataset[key]) params.set(key, view.dataset[key]);
      });
    }
    if (open && open.dataset.id) params.set("conversation", open.dataset.id);
    return params;
  }

  function viewKey() {
    var params = viewParams();
    params.delete("after");
    return params.toString();
  }

  // The socket URL is rebuilt on every (re)connect so the server replays from
  // the last sequence number this tab applied, for what this tab shows.
  var current = null; // the newest socket; events of superseded ones are ignored
  htmx.createWebSocket = function () {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    current = new WebSocket(scheme + location.host + "/ws/inbox/?" + viewParams());
    current.binaryType = htmx.config.wsBinaryType;
    return current;
  };
  function fromCurrent(event) {
    var raw = event.detail && event.detail.event;
    return !raw || !raw.target || raw.target === current;
  }
  // Back quickly after a laptop lid closes: at most 10 s between tries.
  htmx.config.wsReconnectDelay = function (retry) {
    return Math.min(500 * Math.pow(2, retry), 10000) * (0.5 + Math.random() / 2);
  };

  var socket = null;
  var connectedView = null;
  var isOpen = false;

  function setStatus(state, text) {
    var el = document.getElementById("live-status");
    if (el) {
      el.dataset.state = state;
      el.textContent = text;
    }
  }

  document.addEventListener("htmx:wsConnecting", function () {
    if (!isOpen) setStatus("connecting", "reconnecting…");
  });
  document.addEventListener("htmx:wsOpen", function (event) {
    if (!fromCurrent(event)) return;
    socket = event.detail.socketWrapper;
    connectedView = viewKey();
    isOpen = true;
    // The thread's own resume point has been used.
    var open = document.getElementById("live-conversation");
    if (open) delete open.dataset.seq;
    setStatus("live", "live");
  });
  document.addEventListener("htmx:wsClose", function (event) {
    // A socket replaced by a newer one (a reconnect racing a retry) says nothing.
    if (!fromCurrent(event)) return;
    isOpen = false;
    setStatus("connecting", "reconnecting…");
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    // Too much was missed to replay: the server asks for a fresh page.
    var stale = document.getElementById("live-stale");
    if (stale && stale.dataset.stale) {
      setStatus("connecting", "reloading…");
      location.reload();
      return;
    }
    refreshTimes();
    markSelected();
    stickToBottom();
  });

  function reconnect() {
    if (socket) socket.reconnect();
  }
  // A new filter or an opened conversation changes what the server must send.
  document.addEventListener("htmx:afterSettle", function () {
    if (socket && viewKey() !== connectedView) reconnect();
    refreshTimes();
    markSelected();
  });
  window.addEventListener("online", function () { if (!isOpen) reconnect(); });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && socket && !isOpen) reconnect();
  });
  setInterval(function () {
    if (socket && isOpen) socket.send(JSON.stringify({ type: "ping" }));
  }, 25000);

  // Keep the thread scrolled to the newest message unless the agent scrolled up.
  var pinned = true;
  document.addEventListener("scroll", function (event) {
    var thread = event.target;
    if (thread && thread.classList && thread.classList.contains("thread")) {
      pinned = thread.scrollHeight - thread.scrollTop - thread.clientHeight < 80;
    }
  }, true);
  function stickToBottom() {
    var thread = document.querySelector(".thread");
    if (thread && pinned) thread.scrollTop = thread.scrollHeight;
  }

  var units = [["year", 31536000], ["month", 2592000], ["day", 86400], ["hour", 3600], ["minute", 60]];
  var format = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  function refreshTimes() {
    var now = Date.now();
    document.querySelectorAll("time[data-relative]").forEach(function (el) {
      var seconds = Math.round((Date.parse(el.getAttribute("datetime")) - now) / 1000);
      var text = "just now";
      for (var i = 0; i < units.length; i++) {
        if (Math.abs(seconds) >= units[i][1]) {
          text = format.format(Math.round(seconds / units[i][1]), units[i][0]);
          break;
        }
      }
      el.textContent = text;
    });
  }
  setInterval(refreshTimes, 30000);

  function markSelected() {
    var open = document.getElementById("live-conversation");
    var id = open && open.dataset.id;
    document.querySelectorAll("#conversation-list > li.conversation").forEach(function (li) {
      li.classList.toggle("selected", !!id && li.id === "conv-" + id);
    });
  }

  // j / k move, Enter opens, / searches.
  var cursor = -1;
  document.addEventListener("keydown", function (event) {
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || event.target.isContentEditable) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (event.metaKey || event.ctrlKey || event.altKey) return;
    var rows = Array.from(document.querySelectorAll("#conversation-list > li.conversation"));
    if (event.key === "/") {
      event.preventDefault();
      var search = document.getElementById("search");
      if (search) search.focus();
    } else if ((event.key === "j" || event.key === "k") && rows.length) {
      event.preventDefault();
      var current = rows.findIndex(function (li) { return li.classList.contains("cursor"); });
      cursor = current < 0 ? 0 : Math.max(0, Math.min(rows.length - 1, current + (event.key === "j" ? 1 : -1)));
      rows.forEach(function (li, i) { li.classList.toggle("cursor", i === cursor); });
      rows[cursor].scrollIntoView({ block: "nearest" });
      rows[cursor].querySelector("a").focus();
    } else if (event.key === "Enter") {
      var row = rows.find(function (li) { return li.classList.contains("cursor"); });
      if (row && document.activeElement === document.body) row.querySelector("a").click();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    refreshTimes();
    stickToBottom();
  });
})();
