// The reports page's range form. Picking a range shows it at once; "Custom"
// waits until both dates are set (no request before, so no error), then Show
// sends them; typing a date selects "Custom"; going back to a fixed range clears the dates (the
// server takes given dates as a custom range). A refused range comes back as
// the fields with the reason beside them, the report staying as it was.
(function () {
  "use strict";
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "400", swap: true, error: false },
    { code: "[45]..", swap: false, error: true },
  ];
  function fields(form) {
    return {
      select: form.querySelector("#range-select"),
      from: form.querySelector("#range-from"),
      to: form.querySelector("#range-to"),
    };
  }
  // A new request: the last one's complaints go (a refusal brings its own).
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = document.getElementById("range-form");
    if (!form || event.target !== form) return;
    form.querySelectorAll(".field-error").forEach(function (el) { el.remove(); });
    form.querySelectorAll("[aria-invalid]").forEach(function (el) {
      el.removeAttribute("aria-invalid");
      el.removeAttribute("aria-describedby");
    });
  });
  document.addEventListener("change", function (event) {
    var form = event.target.closest && event.target.closest("#range-form");
    if (!form) return;
    var f = fields(form);
    if (event.target === f.select) {
      if (f.select.value === "custom") {
        if (f.from.value && f.to.value) form.requestSubmit();
        else (f.from.value ? f.to : f.from).focus();
        return;
      }
      f.from.value = "";
      f.to.value = "";
      form.requestSubmit();
    } else if (event.target === f.from || event.target === f.to) {
      // Not sent yet: a date being typed changes with each digit; Show sends.
      if (f.from.value || f.to.value) f.select.value = "custom";
    }
  });
})();
