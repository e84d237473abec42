// The curation panel of a run page: start a gold answer from one of the answers' text.
// The panel is re-rendered by htmx and the live script, so listen on the document.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-gold-from]");
  if (!button) return;
  const panel = button.closest("form");
  const source = panel?.querySelector(`template[data-gold-source="${button.dataset.goldFrom}"]`);
  const target = panel?.querySelector("textarea[name=gold_answer]");
  if (!source || !target) return;
  if (target.value.trim() && !window.confirm("Replace the gold answer you have written?")) return;
  target.value = source.content.textContent;
  target.focus();
});
