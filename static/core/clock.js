// Every <time datetime="…" data-stamp> in the agent's time zone and language,
// in the one format of the stamp filter (core/templatetags/clock.py):
// "Dec 5, 07:57" / "12월 5일 07:57", with the year when it is not this year.
// Live fragments are rendered once on the server for every agent (in UTC), so
// this runs on load and on everything htmx swaps in, out-of-band too.
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

  function render(root) {
    if (!parts || !root || !root.querySelectorAll) return;
    var found = Array.prototype.slice.call(root.querySelectorAll("time[data-stamp]"));
    if (root.matches && root.matches("time[data-stamp]")) found.push(root);
    found.forEach(function (el) {
      var date = new Date(el.getAttribute("datetime"));
      if (isNaN(date.getTime())) return;
      var text = stamp(date);
      if (el.textContent !== text) el.textContent = text;
    });
  }

  function start() {
    parts = setUp();
    render(document.body);
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
