// The bell in the navigation: its count arrives live (hx-swap-oob from the
// inbox socket); when it grows with something new, an optional short tone.
// The choice is kept in this browser (localStorage), off by default.
(function () {
  "use strict";
  var KEY = "inbox-bell-sound";
  var last = null;

  function soundOn() {
    try { return window.localStorage.getItem(KEY) === "on"; } catch (e) { return false; }
  }

  function tone() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    var audio = new Context();
    var osc = audio.createOscillator();
    var gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.35);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.35);
    osc.onended = function () { audio.close(); };
    document.body.dataset.bellRang = String(Number(document.body.dataset.bellRang || 0) + 1);
  }

  function onCount() {
    var el = document.getElementById("bell-count");
    if (!el) return;
    var count = Number(el.dataset.count || 0);
    if (last !== null && count > last && el.dataset.new && soundOn()) tone();
    last = count;
  }

  function syncToggle() {
    var box = document.getElementById("bell-sound");
    if (box) box.checked = soundOn();
  }

  document.addEventListener("change", function (event) {
    if (event.target && event.target.id === "bell-sound") {
      try { window.localStorage.setItem(KEY, event.target.checked ? "on" : "off"); } catch (e) { /* private mode */ }
    }
  });
  document.addEventListener("htmx:load", function () { onCount(); syncToggle(); });
  document.addEventListener("DOMContentLoaded", function () { onCount(); syncToggle(); });
})();
