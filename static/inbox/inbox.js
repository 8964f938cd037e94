// Inbox behaviour that htmx does not cover: where the websocket resumes from,
// the "reconnecting…" state and keyboard navigation (times: core/clock.js).
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
      ["platform", "status", "owner", "q", "page", "tag", "assignee", "since", "until"].forEach(function (key) {
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
    // The ws extension closes the socket it replaces only once that one is
    // open; one still connecting would live on beside the new one and every
    // frame would arrive twice. Close it quietly (no reconnect from it).
    if (current && current.readyState === WebSocket.CONNECTING) {
      current.onopen = current.onclose = current.onerror = null;
      current.close();
    }
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    current = new WebSocket(scheme + location.host + "/ws/inbox/?" + viewParams());
    current.binaryType = htmx.config.wsBinaryType;
    return current;
  };
  function fromCurrent(event) {
    var raw = event.detail && event.detail.event;
    return !raw || !raw.target || raw.target === current;
  }
  // A frame deletes a row or thread item before inserting it (so a replayed
  // frame never shows it twice) and updates rows in place; what this page
  // does not show has nothing to delete or update, and htmx would log an
  // error for each. Drop those fragments, unless the same frame inserts the
  // element first. Used by #live (hx-ext="ws,inbox-live").
  htmx.defineExtension("inbox-live", {
    transformResponse: function (text) {
      var template = document.createElement("template");
      template.innerHTML = text;
      var incoming = new Set();
      var changed = false;
      Array.from(template.content.children).forEach(function (el) {
        var oob = el.getAttribute("hx-swap-oob");
        if ((oob === "true" || oob === "delete") && el.id) {
          if (!document.getElementById(el.id) && !incoming.has(el.id)) {
            // A row this view now shows but did not (a conversation just
            // assigned to me, in "Mine"): put it where its activity sorts it.
            var place = oob === "true" && el.matches("li.conversation") && rowPlace(el);
            if (place) {
              var wrapper = document.createElement("div");
              wrapper.setAttribute("hx-swap-oob", place);
              el.removeAttribute("hx-swap-oob");
              el.replaceWith(wrapper);
              wrapper.appendChild(el);
              incoming.add(el.id);
              changed = true;
              return;
            }
            el.remove();
            changed = true;
          }
          return;
        }
        el.querySelectorAll("[id]").forEach(function (inner) {
          incoming.add(inner.id);
        });
      });
      return changed ? template.innerHTML : text;
    },
  });

  // Where a row missing from the list belongs, as an hx-swap-oob value: before
  // the first row with older activity; at the end if none is older and the
  // list is complete; nowhere (null) if an unloaded page holds its place.
  function rowPlace(row) {
    var list = document.getElementById("conversation-list");
    if (!list) return null;
    var at = parseFloat(row.dataset.at || "0");
    var rows = list.querySelectorAll(":scope > li.conversation");
    for (var i = 0; i < rows.length; i++) {
      if (parseFloat(rows[i].dataset.at || "0") < at) return "beforebegin:#" + rows[i].id;
    }
    if (list.querySelector(":scope > li.more")) return null;
    var empty = document.getElementById("list-empty");
    if (empty) empty.remove();
    return "beforeend:#conversation-list";
  }

  // A page of older rows or messages ("Load more") may hold some the live
  // stream has already put on screen (a replay on connect): keep those,
  // drop the page's copies, so no id is on the page twice.
  htmx.defineExtension("new-items-only", {
    transformResponse: function (text) {
      var template = document.createElement("template");
      template.innerHTML = text;
      var dropped = 0;
      template.content.querySelectorAll("li.conversation[id], li.message[id]").forEach(function (li) {
        if (document.getElementById(li.id)) {
          li.remove();
          dropped += 1;
        }
      });
      return dropped ? template.innerHTML : text;
    },
  });

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
    if (!isOpen) setStatus("connecting", gettext("reconnecting…"));
  });
  document.addEventListener("htmx:wsOpen", function (event) {
    if (!fromCurrent(event)) return;
    socket = event.detail.socketWrapper;
    connectedView = viewKey();
    isOpen = true;
    // The thread's own resume point has been used.
    var open = document.getElementById("live-conversation");
    if (open) delete open.dataset.seq;
    setStatus("live", gettext("live"));
  });
  document.addEventListener("htmx:wsClose", function (event) {
    // A socket replaced by a newer one (a reconnect racing a retry) says nothing.
    if (!fromCurrent(event)) return;
    isOpen = false;
    var code = event.detail.event && event.detail.event.code;
    if (code === 4401) {
      // Logged out (the session expired): to the login page, then back here.
      setStatus("connecting", gettext("logged out…"));
      location.href = "/login/?next=" + encodeURIComponent(location.pathname + location.search);
      return;
    }
    if (code === 4403) {
      setStatus("connecting", gettext("no access"));
      return;
    }
    setStatus("connecting", gettext("reconnecting…"));
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    // Too much was missed to replay: the server asks for a fresh page.
    var stale = document.getElementById("live-stale");
    if (stale && stale.dataset.stale) {
      setStatus("connecting", gettext("reloading…"));
      location.reload();
      return;
    }
    markSelected();
    stickToBottom();
  });

  function reconnect() {
    if (socket) socket.reconnect();
  }
  // A new filter or an opened conversation changes what the server must send.
  document.addEventListener("htmx:afterSettle", function () {
    if (socket && viewKey() !== connectedView) {
      // Settles come in pairs (the thread, then its badge): reconnect once.
      connectedView = viewKey();
      reconnect();
    }
    markSelected();
  });
  window.addEventListener("online", function () { if (!isOpen) reconnect(); });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && socket && !isOpen) reconnect();
  });
  setInterval(function () {
    if (socket && isOpen) socket.send(JSON.stringify({ type: "ping" }));
  }, 25000);

  // --- the thread: it opens at its newest message and stays there while the
  // agent is there; older pages load as the agent scrolls up to them, and
  // each keeps the agent's place. A wide screen scrolls the thread in its
  // panel, a phone scrolls the page: the same rules for both.
  var pinned = true;
  function threadScroller(thread) {
    return thread.scrollHeight > thread.clientHeight + 1 ? thread : document.scrollingElement;
  }
  function atNewest(thread) {
    var scroller = threadScroller(thread);
    if (scroller === thread) {
      return thread.scrollHeight - thread.scrollTop - thread.clientHeight < 80;
    }
    var bottom = thread.getBoundingClientRect().bottom;
    return bottom >= 0 && bottom <= window.innerHeight + 80;
  }
  function showNewest(thread) {
    thread.scrollTop = thread.scrollHeight;
    if (threadScroller(thread) !== thread) {
      // The page scrolls: the newest message, and the composer under it.
      (document.getElementById("composer") || thread).scrollIntoView({ block: "end" });
    }
  }
  document.addEventListener("scroll", function () {
    var thread = document.querySelector(".thread");
    if (thread) pinned = atNewest(thread);
  }, true);
  function stickToBottom() {
    var thread = document.querySelector(".thread");
    if (thread && pinned) showNewest(thread);
  }
  function openedThread() {
    var thread = document.querySelector(".thread");
    if (!thread) return;
    pinned = true;
    showNewest(thread);
  }

  // The older page is asked for when its marker comes into view, and only
  // after the thread was put at its newest message (htmx's "intersect" fired
  // on a thread that had not been scrolled yet: every older page at once).
  var olderWatch = null;
  function watchOlder() {
    if (olderWatch) olderWatch.disconnect();
    olderWatch = null;
    var thread = document.querySelector(".thread");
    var older = thread && thread.querySelector(":scope > li.older");
    if (!older || !window.IntersectionObserver) return;
    htmx.process(older);
    var watch = new IntersectionObserver(function (entries) {
      if (!entries.some(function (entry) { return entry.isIntersecting; })) return;
      watch.disconnect();
      htmx.trigger(older, "older");
    }, { root: threadScroller(thread) === thread ? thread : null, rootMargin: "200px 0px 0px 0px" });
    watch.observe(older);
    olderWatch = watch;
  }

  // Scroll anchoring: what was in view stays where it was, at the same
  // distance from the end of what scrolls (the new page goes in above it).
  var anchor = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var older = event.detail.target;
    if (!older || !older.matches || !older.matches(".thread > li.older")) return;
    var scroller = threadScroller(older.parentElement);
    anchor = { scroller: scroller, fromEnd: scroller.scrollHeight - scroller.scrollTop };
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "thread-pane") {
      openedThread();
    } else if (anchor) {
      anchor.scroller.scrollTop = anchor.scroller.scrollHeight - anchor.fromEnd;
      anchor = null;
    }
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    // Once htmx has bound the new marker (settling processes it). The old
    // marker has left the page by now: known by its class.
    var target = event.detail.target;
    if (!target || !target.classList) return;
    if (target.id === "thread-pane" || target.classList.contains("older")) {
      anchor = null;
      watchOlder();
    }
  });
  document.addEventListener("htmx:historyRestore", function () {
    openedThread();
    watchOlder();
  });

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
    } else if (event.key === "u") {
      // Leave the open conversation unread and go back to the list.
      var unread = document.querySelector("#conversation-header form.mark-unread button");
      if (unread) { event.preventDefault(); unread.click(); }
    }
  });

  // Refusals (403 "already taken by …", 409, 400 with the form's errors) are
  // shown like any answer; htmx would drop them by default.
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "40[039]", swap: true, error: false },
    { code: "[45]..", swap: false, error: true },
  ];

  // --- ownership: the header is rendered once for every agent; this tab
  // marks whether its own agent is the owner (the server checks anyway).
  function markOwnership() {
    var header = document.getElementById("conversation-header");
    if (!header) return;
    var me = document.body.dataset.userId;
    var owner = header.dataset.ownerId;
    header.dataset.mine = owner && owner === me ? "yes" : owner ? "no" : "";
    markComposer(header);
  }

  // Another agent owns this conversation: say so above the composer, which
  // then adds internal notes only (a reply would be refused), with a Take
  // over button unless a lead locked it to them. Back to normal when the
  // owner changes.
  function markComposer(header) {
    var composer = document.getElementById("composer");
    var notice = document.getElementById("composer-owner");
    if (!composer || !notice) return;
    var other = header.dataset.mine === "no" && header.dataset.status === "human";
    var note = document.getElementById("reply-note");
    var forced = document.getElementById("reply-note-forced");
    var from = document.getElementById("composer-from");
    var send = composer.querySelector("button[type=submit]");
    composer.classList.toggle("owned-by-other", other);
    notice.hidden = !other;
    notice.querySelector(".name").textContent = header.dataset.owner || gettext("another agent");
    notice.querySelector(".take-from").hidden = header.dataset.locked === "yes";
    if (from) from.value = other ? header.dataset.ownerId : "";
    if (note) note.disabled = other;
    if (forced) forced.disabled = !other;
    composer.classList.toggle("as-note", other || (note && note.checked));
    if (send) send.textContent = other ? gettext("Add note") : gettext("Send");
  }

  // --- escalations: the count in the navigation, the tab title, notifications.
  var baseTitle = document.title;
  var lastCount = null;
  function onEscalations() {
    var el = document.getElementById("escalation-count");
    if (!el) return;
    var count = Number(el.dataset.count || 0);
    document.title = count ? "(" + count + ") " + baseTitle : baseTitle;
    if (lastCount !== null && count !== lastCount) {
      document.body.dispatchEvent(new CustomEvent("escalations-changed"));
    }
    lastCount = count;
    var fresh = (el.dataset.new || "").split(",").filter(Boolean);
    el.dataset.new = "";
    if (fresh.length && window.Notification && Notification.permission === "granted") {
      fresh.forEach(function (id) {
        var row = document.querySelector("#conv-" + id + " .customer");
        var who = row ? row.textContent : gettext("A customer");
        var note = new Notification(interpolate(gettext("Escalated: %s"), [who]), {
          body: gettext("Waiting for a human"), tag: "escalation-" + id,
        });
        note.onclick = function () { window.focus(); location.href = "/inbox/c/" + id + "/"; };
      });
    }
  }
  function setUpNotifications() {
    var button = document.getElementById("notify-toggle");
    if (!button || !window.Notification || Notification.permission !== "default") return;
    button.hidden = false;
    button.addEventListener("click", function () {
      Notification.requestPermission().then(function () { button.hidden = true; });
    });
  }

  // --- wait timers and SLA colours, every second.
  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function refreshWaits() {
    var queue = document.getElementById("queue");
    var amber = Number((queue && queue.dataset.slaAmber) || document.body.dataset.slaAmber || 120);
    var red = Number((queue && queue.dataset.slaRed) || document.body.dataset.slaRed || 300);
    var now = Date.now();
    document.querySelectorAll("time[data-since]").forEach(function (el) {
      var since = Date.parse(el.getAttribute("datetime"));
      if (isNaN(since)) return;
      var seconds = Math.max(0, Math.floor((now - since) / 1000));
      var h = Math.floor(seconds / 3600), m = Math.floor(seconds / 60) % 60, s = seconds % 60;
      el.textContent = (h ? h + ":" + pad(m) : m) + ":" + pad(s);
      var item = el.closest(".queue-item") || el;
      item.classList.toggle("sla-red", seconds >= red);
      item.classList.toggle("sla-amber", seconds >= amber && seconds < red);
    });
  }
  setInterval(refreshWaits, 1000);

  // --- the composer: Enter sends, Shift+Enter adds a line, Esc leaves,
  // "/" at the start opens the canned responses, typing tells the others.
  var lastTyping = 0;
  function composerKeys(event) {
    var area = event.target;
    if (area.id !== "reply-text") return;
    var picker = document.getElementById("canned-picker");
    var pickerOpen = picker && !picker.hidden && picker.querySelector("[data-text]");
    if (pickerOpen && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      event.preventDefault();
      var options = Array.from(picker.querySelectorAll("[data-text]"));
      var at = options.findIndex(function (o) { return o.getAttribute("aria-selected") === "true"; });
      at = Math.max(0, Math.min(options.length - 1, at + (event.key === "ArrowDown" ? 1 : -1)));
      options.forEach(function (o, i) { o.setAttribute("aria-selected", i === at ? "true" : "false"); });
      return;
    }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (pickerOpen) {
        var chosen = picker.querySelector('[aria-selected="true"]') || picker.querySelector("[data-text]");
        area.value = chosen.dataset.text;
        closePicker();
        return;
      }
      if (area.value.trim()) area.form.requestSubmit();
      return;
    }
    if (event.key === "Escape") {
      if (picker && !picker.hidden) { closePicker(); } else { area.blur(); }
    }
  }
  function closePicker() {
    var picker = document.getElementById("canned-picker");
    if (picker) { picker.hidden = true; picker.innerHTML = ""; }
  }
  var pickerTimer = null;
  function composerInput(event) {
    var area = event.target;
    if (area.id !== "reply-text") return;
    var now = Date.now();
    if (socket && isOpen && now - lastTyping > 2000 && area.value) {
      lastTyping = now;
      socket.send(JSON.stringify({ type: "typing" }));
    }
    var form = area.form;
    var picker = document.getElementById("canned-picker");
    var note = document.getElementById("reply-note");
    if (note) form.classList.toggle("as-note", note.checked);
    if (area.value.charAt(0) === "/" && area.value.indexOf("\n") < 0) {
      clearTimeout(pickerTimer);
      pickerTimer = setTimeout(function () {
        var url = form.dataset.cannedUrl + "?q=" + encodeURIComponent(area.value.slice(1));
        htmx.ajax("GET", url, { target: "#canned-picker", swap: "innerHTML" }).then(function () {
          picker.hidden = false;
        });
      }, 150);
    } else if (picker && !picker.hidden) {
      closePicker();
    }
  }
  document.addEventListener("keydown", composerKeys, true);
  document.addEventListener("input", composerInput);
  document.addEventListener("change", function (event) {
    if (event.target.id === "reply-note") {
      event.target.form.classList.toggle("as-note", event.target.checked);
    }
  });
  document.addEventListener("click", function (event) {
    var option = event.target.closest && event.target.closest("#canned-picker [data-text]");
    if (!option) return;
    var area = document.getElementById("reply-text");
    area.value = option.dataset.text;
    closePicker();
    area.focus();
  });
  // After a reply is queued, the fresh composer keeps the focus.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "composer") {
      var area = document.getElementById("reply-text");
      if (area) area.focus();
    }
  });

  // "lena assigned you Kim": shown for a while, and as a browser
  // notification when the agent allowed them.
  var noticeTimer = null;
  var noticeShown = "";
  function showNotice() {
    var notice = document.getElementById("notice");
    if (!notice || !notice.textContent.trim()) return;
    var key = notice.dataset.conversation + ":" + notice.textContent;
    if (key === noticeShown) return;
    noticeShown = key;
    notice.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(function () { notice.hidden = true; }, 15000);
    if (document.hidden && window.Notification && Notification.permission === "granted") {
      new Notification(notice.textContent.trim(), { tag: "assigned-" + notice.dataset.conversation });
    }
  }

  // The list's date filters. Chromium reports a date while its year is still
  // being typed (the first digit of 2026 gives 0002-12-04), and the list,
  // this form with it, would reload under the agent's fingers. A date typed
  // or picked counts once the agent leaves the field or presses Enter.
  function dateFilter(el) {
    return el && el.type === "date" && el.form && el.form.id === "filters";
  }
  document.addEventListener("change", function (event) {
    if (!dateFilter(event.target) || document.activeElement !== event.target) return;
    event.stopPropagation(); // before htmx, which listens on the form
    event.target.dataset.pending = "1";
  }, true);
  function commitDate(input) {
    if (!input.dataset.pending) return;
    delete input.dataset.pending;
    htmx.trigger(input.form, "change");
  }
  document.addEventListener("focusout", function (event) {
    if (dateFilter(event.target)) commitDate(event.target);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !dateFilter(event.target)) return;
    event.preventDefault();
    event.target.dataset.pending = "1";
    commitDate(event.target);
  });

  // Snooze "Until…": a time picker, read by the server in the agent's zone
  // (named beside it), the one every time on the page is shown in.
  document.addEventListener("change", function (event) {
    var form = event.target.closest && event.target.closest("form.snooze");
    if (!form || !event.target.classList.contains("snooze-choice")) return;
    var picker = form.querySelector(".snooze-at");
    picker.hidden = event.target.value !== "custom";
    if (!picker.hidden) picker.focus();
  });

  // --- bulk work: pick rows (checkbox, shift-click for a range, "x" on the
  // cursor row), then one action for all of them. The picks survive live
  // re-renders of their rows.
  var picked = new Set();
  var lastPicked = null;
  function pickBoxes() {
    return Array.from(document.querySelectorAll("#conversation-list input.pick"));
  }
  function syncPicks() {
    var bar = document.getElementById("bulk-bar");
    if (!bar) return;
    pickBoxes().forEach(function (box) {
      box.checked = picked.has(box.value);
      box.closest("li").classList.toggle("picked", box.checked);
    });
    bar.hidden = picked.size === 0;
    bar.querySelector(".bulk-count").textContent = interpolate(gettext("%s selected"), [picked.size]);
    // Picks on rows this page no longer shows still count: send them too.
    bar.querySelectorAll("input.picked-elsewhere").forEach(function (el) { el.remove(); });
    var shown = new Set(pickBoxes().map(function (box) { return box.value; }));
    picked.forEach(function (id) {
      if (shown.has(id)) return;
      var hidden = document.createElement("input");
      hidden.type = "hidden"; hidden.name = "ids"; hidden.value = id;
      hidden.className = "picked-elsewhere";
      bar.appendChild(hidden);
    });
  }
  function setPick(box, on) {
    if (on) picked.add(box.value); else picked.delete(box.value);
  }
  document.addEventListener("click", function (event) {
    var box = event.target.closest && event.target.closest("#conversation-list input.pick");
    if (box) {
      var boxes = pickBoxes();
      if (event.shiftKey && lastPicked !== null) {
        var from = boxes.findIndex(function (b) { return b.value === lastPicked; });
        var to = boxes.indexOf(box);
        if (from >= 0) {
          boxes.slice(Math.min(from, to), Math.max(from, to) + 1).forEach(function (b) {
            setPick(b, box.checked);
          });
        }
      }
      setPick(box, box.checked);
      lastPicked = box.value;
      syncPicks();
      return;
    }
    if (event.target.closest && event.target.closest("#bulk-bar .bulk-clear")) {
      picked.clear();
      syncPicks();
    }
  });
  document.addEventListener("change", function (event) {
    if (!event.target.classList || !event.target.classList.contains("bulk-action")) return;
    var bar = document.getElementById("bulk-bar");
    var wanted = { assign: ".bulk-assign", snooze: ".bulk-snooze", tag: ".bulk-tag" }[event.target.value];
    bar.querySelectorAll(".bulk-arg").forEach(function (el) {
      el.hidden = !wanted || !el.matches(wanted);
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "x" || event.metaKey || event.ctrlKey || event.altKey) return;
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select") return;
    var row = document.querySelector("#conversation-list > li.conversation.cursor")
      || (document.activeElement && document.activeElement.closest && document.activeElement.closest("#conversation-list > li.conversation"));
    var box = row && row.querySelector("input.pick");
    if (!box) return;
    event.preventDefault();
    setPick(box, !picked.has(box.value));
    lastPicked = box.value;
    syncPicks();
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    // Done: the picks are spent (the rows' new states come over the socket).
    if (event.detail.elt && event.detail.elt.id === "bulk-bar" && event.detail.successful) {
      picked.clear();
      syncPicks();
    }
  });

  function afterAnyChange() {
    showNotice();
    syncPicks();
    markOwnership();
    onEscalations();
    refreshWaits();
  }
  document.addEventListener("htmx:wsAfterMessage", afterAnyChange);
  document.addEventListener("htmx:afterSettle", afterAnyChange);

  document.addEventListener("DOMContentLoaded", function () {
    openedThread();
    watchOlder();
    setUpNotifications();
    afterAnyChange();
  });
})();
