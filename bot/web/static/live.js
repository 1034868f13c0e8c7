// Keeps the figures of /progress and /embed current: polls /progress.json once a minute.
// The page works without it; this file is the only script (the CSP allows no inline code).
"use strict";
(function () {
  var root = document.querySelector("[data-live]");
  if (!root || !window.fetch) {
    return;
  }
  var url = root.getAttribute("data-live");
  var lang = document.documentElement.lang || "en";
  var number = new Intl.NumberFormat(lang === "en" ? "en" : lang);
  var percent = new Intl.NumberFormat(lang === "en" ? "en" : lang, {
    style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1
  });
  var etag = null;

  function set(field, text) {
    document.querySelectorAll('[data-field="' + field + '"]').forEach(function (el) {
      el.textContent = text;
    });
  }

  function apply(data) {
    set("total", number.format(data.total));
    set("share", percent.format(data.share));
    set("over", String(data.countries_over_minimum));
    document.querySelectorAll(".total-bar").forEach(function (bar) {
      bar.value = Math.min(data.total, data.goal);
    });
    data.countries.forEach(function (c) {
      var item = document.querySelector('.country[data-code="' + c.code + '"]');
      if (!item) {
        return;
      }
      item.querySelector("progress").value = Math.min(c.count, c.minimum);
      item.querySelector("[data-count]").textContent = number.format(c.count);
      item.classList.toggle("over", c.over_minimum);
    });
  }

  function poll() {
    var headers = etag ? { "If-None-Match": etag } : {};
    fetch(url, { headers: headers, cache: "no-cache" })
      .then(function (response) {
        if (response.status !== 200) {
          return null;
        }
        etag = response.headers.get("ETag");
        return response.json();
      })
      .then(function (data) {
        if (data) {
          apply(data);
        }
      })
      .catch(function () { /* offline for a moment: the next poll tries again */ });
  }

  window.setInterval(poll, 60000);
})();
