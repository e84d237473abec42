// Small behaviours shared by every page. Pages work without it; it only adds comfort.
(function () {
  "use strict";

  // Toasts: dismiss on click; success and info ones fade by themselves, errors stay.
  function armToast(toast) {
    if (toast.dataset.armed) return;
    toast.dataset.armed = "1";
    if (toast.classList.contains("toast-success") || toast.classList.contains("toast-info")) {
      setTimeout(function () { dismiss(toast); }, 6000);
    }
  }
  function dismiss(toast) {
    toast.classList.add("is-leaving");
    setTimeout(function () { toast.remove(); }, 200);
  }
  function armAll(root) {
    if (root.matches && root.matches(".toast")) armToast(root);
    if (root.querySelectorAll) root.querySelectorAll(".toast").forEach(armToast);
  }

  document.addEventListener("click", function (event) {
    var close = event.target.closest("[data-dismiss]");
    if (close) { dismiss(close.closest(".toast")); return; }

    // Copy an invitation link (or any [data-copy] target) to the clipboard.
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var input = document.getElementById(copy.dataset.copy);
      if (!input) return;
      input.select();
      var done = function () {
        var label = copy.textContent;
        copy.textContent = "Copied";
        setTimeout(function () { copy.textContent = label; }, 1500);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done);
      } else {
        document.execCommand("copy");
        done();
      }
      return;
    }

    // Close open menus when clicking elsewhere.
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });

  // Forms that are not sent by htmx ask with data-confirm before an irreversible step.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      menu.removeAttribute("open");
    });
  });

  document.addEventListener("DOMContentLoaded", function () {
    armAll(document);
    // Sign-up records the browser's time zone so times show in it from the first page.
    document.querySelectorAll("input[data-browser-time-zone]").forEach(function (input) {
      try { input.value = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { /* keep UTC */ }
    });
    if (window.htmx) window.htmx.onLoad(armAll);
  });
})();
