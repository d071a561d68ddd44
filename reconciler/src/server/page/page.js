// paver's status page: every few seconds, fetch the page again and swap its <main> in,
// so it follows the reconciler without a reload. The server renders (and escapes)
// everything; this script only moves server-rendered nodes. Folded plans stay open.
"use strict";
(function () {
  var seconds = Number(document.body.dataset.refreshSeconds) || 2;
  var live = document.getElementById("live");
  var refreshes = 0;

  function openKeys() {
    var keys = {};
    document.querySelectorAll("details[open][data-key]").forEach(function (d) {
      keys[d.dataset.key] = true;
    });
    return keys;
  }

  function refresh() {
    fetch(window.location.pathname, { cache: "no-store", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("page");
        var current = document.getElementById("page");
        if (!fresh || !current) {
          throw new Error("no <main> in the answer");
        }
        var open = openKeys();
        fresh.querySelectorAll("details[data-key]").forEach(function (d) {
          if (open[d.dataset.key]) {
            d.open = true;
          }
        });
        current.replaceWith(document.adoptNode(fresh));
        refreshes += 1;
        document.body.dataset.refreshes = String(refreshes);
        live.textContent = "live · updated " + new Date().toLocaleTimeString();
        live.className = "live ok";
      })
      .catch(function (error) {
        live.textContent = "paver run unreachable (" + error.message + "), retrying";
        live.className = "live bad";
      })
      .finally(function () {
        window.setTimeout(refresh, seconds * 1000);
      });
  }

  window.setTimeout(refresh, seconds * 1000);
})();
