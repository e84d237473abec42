// The add-credential form: show the fields the chosen provider needs, and its hint.
(function () {
  "use strict";

  function setup() {
    var form = document.querySelector(".cred-form");
    var hintsNode = document.getElementById("provider-hints");
    if (!form || !hintsNode) return;
    var hints = JSON.parse(hintsNode.textContent);
    var provider = form.querySelector("[name=provider]");
    var baseField = form.querySelector("[data-field=base_url]");
    var keysField = form.querySelector("[data-field=keys]");
    var baseInput = form.querySelector("[name=base_url]");
    var help = form.querySelector("[data-provider-help]");

    function apply() {
      var hint = hints[provider.value] || {};
      baseField.hidden = !!hint.simulated;
      keysField.hidden = !!hint.simulated;
      baseInput.required = !!hint.needs_base_url;
      baseInput.placeholder = hint.default_base_url
        ? hint.default_base_url + " (default)"
        : "http://localhost:11434/v1";
      var label = baseField.querySelector("label");
      if (label) label.textContent = hint.needs_base_url ? "Base URL" : "Base URL (optional)";
      var baseHelp = baseField.querySelector(".help");
      if (baseHelp) {
        baseHelp.textContent = hint.needs_base_url
          ? "The API root, e.g. http://localhost:11434/v1 for Ollama."
          : "Leave empty to use the provider's own API; set it to go through a gateway or proxy.";
      }
      var keysLabel = keysField.querySelector("label");
      if (keysLabel) keysLabel.textContent = hint.needs_key ? "API keys" : "API keys (optional)";
      help.textContent = hint.help || "";
      help.hidden = !hint.help;
    }
    provider.addEventListener("change", apply);
    apply();
  }

  document.addEventListener("DOMContentLoaded", setup);
})();
