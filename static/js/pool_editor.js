// The pool editor: add and remove member rows, point each model field at its credential's
// model list, and show the debate-only fields only for debates. Without it the page still
// saves; it just cannot add rows.
(function () {
  "use strict";

  function setup() {
    var form = document.querySelector(".pool-form");
    if (!form) return;
    var rows = form.querySelector("[data-member-rows]");
    var template = document.getElementById("member-template");
    var total = form.querySelector("[name=members-TOTAL_FORMS]");
    var addButton = form.querySelector("[data-add-member]");
    var countBadge = form.querySelector("[data-member-count]");
    var max = parseInt(form.dataset.maxMembers || "16", 10);

    function liveRows() {
      return Array.prototype.filter.call(rows.querySelectorAll("[data-member-row]"), function (row) {
        return !row.hidden;
      });
    }

    function renumber() {
      var live = liveRows();
      live.forEach(function (row, i) {
        row.querySelector("[data-member-num]").textContent = String(i + 1);
      });
      if (countBadge) countBadge.textContent = String(live.length);
      addButton.disabled = live.length >= max;
      addButton.title = live.length >= max ? "A pool has at most " + max + " members" : "";
    }

    // Each model field suggests the models of the credential chosen beside it.
    function linkModel(select, input) {
      if (!select || !input) return;
      var update = function () {
        if (select.value) input.setAttribute("list", "models-" + select.value);
        else input.removeAttribute("list");
      };
      select.addEventListener("change", update);
      update();
    }

    function armRow(row) {
      linkModel(row.querySelector("select[name$='-credential']"), row.querySelector("input[name$='-model']"));
    }

    addButton.addEventListener("click", function () {
      var index = parseInt(total.value, 10);
      var html = template.innerHTML.replace(/__prefix__/g, String(index));
      var holder = document.createElement("div");
      holder.innerHTML = html.trim();
      var row = holder.firstElementChild;
      // A new row starts from the last one's credential: pools usually share a provider.
      var live = liveRows();
      var last = live[live.length - 1];
      if (last) {
        var lastCred = last.querySelector("select[name$='-credential']");
        var newCred = row.querySelector("select[name$='-credential']");
        if (lastCred && newCred) newCred.value = lastCred.value;
      }
      rows.appendChild(row);
      total.value = String(index + 1);
      armRow(row);
      renumber();
      var model = row.querySelector("input[name$='-model']");
      if (model) model.focus();
    });

    rows.addEventListener("click", function (event) {
      var button = event.target.closest("[data-remove-member]");
      if (!button) return;
      var row = button.closest("[data-member-row]");
      var del = row.querySelector("input[name$='-DELETE']");
      if (del) del.checked = true;
      // Hidden, not removed: the formset keeps its numbering and skips rows marked deleted.
      row.hidden = true;
      renumber();
    });

    // Rows marked deleted before a failed save stay hidden when the page comes back.
    rows.querySelectorAll("[data-member-row]").forEach(function (row) {
      var del = row.querySelector("input[name$='-DELETE']");
      if (del && del.checked) row.hidden = true;
      armRow(row);
    });

    linkModel(form.querySelector("[name=judge_credential]"), form.querySelector("[name=judge_model]"));

    var debateOnly = form.querySelectorAll("[data-debate-only]");
    var judgeNote = form.querySelector("[data-judge-note]");
    function applyMode() {
      var checked = form.querySelector("[name=mode]:checked");
      var mode = checked ? checked.value : "best_of";
      debateOnly.forEach(function (el) { el.hidden = mode !== "debate"; });
      if (judgeNote) {
        judgeNote.textContent = mode === "best_of"
          ? "Optional for best of: without one, people pick."
          : "Required: " + (mode === "merge" ? "merging" : "a debate") + " needs a judge.";
      }
    }
    form.querySelectorAll("[name=mode]").forEach(function (radio) {
      radio.addEventListener("change", applyMode);
    });
    applyMode();
    renumber();
  }

  document.addEventListener("DOMContentLoaded", setup);
})();
