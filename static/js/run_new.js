// The new-run page: show the chosen source (pool or ad hoc models), and suggest each row's
// models from the catalog of the credential picked in that row. The page works without it.
const form = document.getElementById("new-run");

function showSource() {
  const chosen = form.querySelector("input[name=source]:checked");
  const value = chosen ? chosen.value : "pool";
  form.querySelectorAll("[data-source]").forEach((section) => {
    section.toggleAttribute("data-inactive", section.dataset.source !== value);
  });
}

function linkModels(select) {
  // "m0_credential" -> "m0_model"; "judge_credential" -> "judge_model".
  const input = form.querySelector(`[name="${select.name.replace(/_credential$/, "_model")}"]`);
  if (!input) return;
  const list = select.value && document.getElementById(`models-${select.value}`);
  input.setAttribute("list", list ? list.id : "models-all");
}

if (form) {
  form.classList.add("has-js");
  showSource();
  form.querySelectorAll("select[name$=_credential]").forEach(linkModels);
  form.addEventListener("change", (event) => {
    const target = event.target;
    if (target.name === "source") showSource();
    if (target.matches("select[name$=_credential]")) linkModels(target);
  });
}
