// The reports page: a range the server refuses (400, e.g. "Custom" before both
// dates are picked) comes back as the region with the reason, shown in place.
(function () {
  "use strict";
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "400", swap: true, error: false },
    { code: "[45]..", swap: false, error: true },
  ];
})();
