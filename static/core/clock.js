// Every <time datetime="…" data-stamp> in the agent's time zone and language,
// in the one format of the stamp filter (core/templatetags/clock.py):
// "Dec 5, 07:57" / "12월 5일 07:57", with the year when it is not this year.
// Live fragments are rendered once on the server for every agent (in UTC), so
// this runs on load and on everything htmx swaps in, out-of-band too. The
// list's <time data-relative> reads the same, or "10 minutes ago" within the
// hour; [data-zone] elements name the agent's zone.
(function () {
  "use strict";

  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var parts = null;

  function setUp() {
    var body = document.body;
    var zone = (body && body.dataset.tz) || "UTC";
    var format;
    try {
      format = new Intl.DateTimeFormat("en-US", {
        timeZone: zone,
        year: "numeric",
        month: "numeric",
        day: "numeric",
        hour: "2-digit",
        minute: "2-digit",
        hourCycle: "h23",
      });
    } catch (error) {
      return null; // an unknown zone: leave the server's text
    }
    return function (date) {
      var out = {};
      format.formatToParts(date).forEach(function (part) {
        out[part.type] = Number(part.value);
      });
      out.hour = out.hour % 24; // some engines say 24 at midnight
      return out;
    };
  }

  function two(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function stamp(date) {
    var t = parts(date);
    var now = parts(new Date());
    var clock = two(t.hour) + ":" + two(t.minute);
    var thisYear = t.year === now.year;
    var lang = (document.body.dataset.lang || "en").split("-")[0];
    if (lang === "ko") {
      var day = t.month + "월 " + t.day + "일";
      return (thisYear ? "" : t.year + "년 ") + day + " " + clock;
    }
    var en = MONTHS[t.month - 1] + " " + t.day;
    return thisYear ? en + ", " + clock : en + ", " + t.year + ", " + clock;
  }

  // The conversation list's <time data-relative>: the stamp too, but within
  // the last hour "just now" / "12 minutes ago" (what agents know from
  // Chatwoot-like lists), the stamp as its tooltip either way.
  var HOUR_MS = 3600000;
  function recent(date) {
    var ago = Date.now() - date.getTime();
    if (ago >= HOUR_MS || ago < -60000 || typeof ngettext !== "function") return null;
    var minutes = Math.floor(Math.max(ago, 0) / 60000);
    if (minutes < 1) return gettext("just now");
    return interpolate(ngettext("%s minute ago", "%s minutes ago", minutes), [minutes]);
  }

  function within(root, selector) {
    var found = Array.prototype.slice.call(root.querySelectorAll(selector));
    if (root.matches && root.matches(selector)) found.push(root);
    return found;
  }

  function render(root) {
    if (!parts || !root || !root.querySelectorAll) return;
    within(root, "time[data-stamp], time[data-relative]").forEach(function (el) {
      var date = new Date(el.getAttribute("datetime"));
      if (isNaN(date.getTime())) return;
      var text = stamp(date);
      if (el.hasAttribute("data-relative")) {
        if (el.title !== text) el.title = text;
        text = recent(date) || text;
      }
      if (el.textContent !== text) el.textContent = text;
    });
    // The zone's name where a page says which one a time reads in.
    var zone = document.body.dataset.tz;
    within(root, "[data-zone]").forEach(function (el) {
      if (zone && el.textContent !== zone) el.textContent = zone;
    });
  }

  function start() {
    parts = setUp();
    render(document.body);
    // "just now" grows into minutes, and after an hour into the stamp.
    setInterval(function () {
      document.querySelectorAll("time[data-relative]").forEach(function (el) {
        render(el);
      });
    }, 30000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
  document.addEventListener("htmx:load", function (event) {
    render(event.target);
  });

  window.openclawClock = { stamp: function (date) { return parts ? stamp(date) : ""; }, render: render };
})();
