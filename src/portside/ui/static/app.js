// Portside's web UI: copy buttons, the light/dark switch and a key to jump to the search field.
(function () {
  "use strict";
  var root = document.documentElement;
  var saved = null;
  try { saved = localStorage.getItem("portside-theme"); } catch (e) { /* storage may be off */ }
  if (saved === "light" || saved === "dark") root.setAttribute("data-theme", saved);

  function current() {
    var set = root.getAttribute("data-theme");
    if (set) return set;
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function copy(button) {
    var text = button.getAttribute("data-copy");
    var done = function () {
      button.classList.add("done");
      button.textContent = "Copied";
      setTimeout(function () { button.classList.remove("done"); button.textContent = "Copy"; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
    } else {
      fallback(text);
      done();
    }
  }

  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    document.body.removeChild(area);
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest && event.target.closest("[data-copy], [data-theme-toggle]");
    if (!target) return;
    if (target.hasAttribute("data-copy")) {
      copy(target);
    } else {
      var next = current() === "dark" ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { localStorage.setItem("portside-theme", next); } catch (e) { /* kept for this page only */ }
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var active = document.activeElement;
    if (active && (active.tagName === "INPUT" || active.tagName === "TEXTAREA" || active.isContentEditable)) return;
    var field = document.querySelector("[data-shortcut='/']");
    if (field) { event.preventDefault(); field.focus(); field.select(); }
  });
})();
