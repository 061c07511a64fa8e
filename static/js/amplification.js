// The tree inspector: keyboard navigation over the outline (a flat ARIA tree with levels),
// collapsing, and keeping the selection and the open node's pane current as the websocket
// replaces the outline. Everything works without it through plain links and forms.
(function () {
  "use strict";
  const root = document.querySelector(".amp");
  if (!root) return;
  const collapsed = new Set();
  let selectedId = new URLSearchParams(location.search).get("node");
  let dirty = false;
  let focusedId = null; // the outline item with keyboard focus, kept across live swaps

  const outline = () => document.getElementById("amp-outline");
  const items = () => Array.from(outline().querySelectorAll("[role=treeitem]"));
  const byId = (id) => document.getElementById("amp-node-" + id);
  const visible = () => items().filter((li) => !li.hidden);

  function hiddenByAncestor(li) {
    let parent = li.dataset.parent;
    while (parent) {
      if (collapsed.has(parent)) return true;
      const p = byId(parent);
      parent = p ? p.dataset.parent : "";
    }
    return false;
  }

  function apply() {
    for (const li of items()) {
      li.hidden = hiddenByAncestor(li);
      if (li.hasAttribute("aria-expanded")) {
        li.setAttribute("aria-expanded", collapsed.has(li.dataset.id) ? "false" : "true");
      }
      const selected = li.dataset.id === selectedId;
      li.setAttribute("aria-selected", selected ? "true" : "false");
      li.tabIndex = selected ? 0 : -1;
    }
    if (!items().some((li) => li.tabIndex === 0) && items()[0]) items()[0].tabIndex = 0;
    filter();
  }

  root.addEventListener("focusin", (event) => {
    const li = event.target.closest && event.target.closest("[role=treeitem]");
    focusedId = li ? li.dataset.id : null;
  });

  function focus(li) {
    if (!li) return;
    for (const other of items()) other.tabIndex = -1;
    li.tabIndex = 0;
    li.focus();
  }

  function open(li) {
    selectedId = li.dataset.id;
    dirty = false;
    apply();
    li.querySelector("a").click();
  }

  root.addEventListener("keydown", (event) => {
    const li = event.target.closest && event.target.closest("[role=treeitem]");
    if (event.key === "/" && !event.target.matches("input, textarea, select")) {
      event.preventDefault();
      document.getElementById("amp-q").focus();
      return;
    }
    if (!li) return;
    const list = visible();
    const index = list.indexOf(li);
    const id = li.dataset.id;
    const children = items().filter((c) => c.dataset.parent === id);
    switch (event.key) {
      case "ArrowDown": focus(list[index + 1]); break;
      case "ArrowUp": focus(list[index - 1]); break;
      case "Home": focus(list[0]); break;
      case "End": focus(list[list.length - 1]); break;
      case "ArrowRight":
        if (children.length && collapsed.has(id)) { collapsed.delete(id); apply(); focus(li); }
        else focus(children[0]);
        break;
      case "ArrowLeft":
        if (children.length && !collapsed.has(id)) { collapsed.add(id); apply(); focus(li); }
        else focus(byId(li.dataset.parent));
        break;
      case "Enter": case " ": open(li); break;
      default: return;
    }
    event.preventDefault();
  });

  root.addEventListener("click", (event) => {
    const li = event.target.closest && event.target.closest("[role=treeitem]");
    if (li && event.target.closest("a")) { selectedId = li.dataset.id; dirty = false; apply(); }
  });

  root.addEventListener("input", (event) => {
    if (event.target.id === "amp-q") filter();
    else if (event.target.closest("[data-dirty-guard]")) dirty = true;
  });

  function filter() {
    const input = document.getElementById("amp-q");
    const needle = (input ? input.value : "").trim().toLowerCase();
    for (const li of items()) {
      const hit = needle && li.textContent.toLowerCase().includes(needle);
      li.classList.toggle("amp-match", Boolean(hit));
    }
  }

  // The socket replaced the outline: restore collapsed state, selection and keyboard focus in
  // the same task as the swap (so no key press lands on the page meanwhile), then refresh the
  // open node if it changed (unless the person is typing in one of its forms).
  document.body.addEventListener("htmx:oobAfterSwap", (event) => {
    const swapped = event.target;
    if (!swapped || swapped.id !== "amp-outline") return;
    apply();
    if (focusedId && (document.activeElement === document.body || !document.activeElement)) {
      const li = byId(focusedId);
      if (li) focus(li);
    }
  });
  document.body.addEventListener("htmx:wsAfterMessage", () => setTimeout(refreshPane, 0));
  function refreshPane() {
    const pane = document.getElementById("amp-pane");
    const li = selectedId && byId(selectedId);
    if (pane && li && pane.dataset.node === selectedId && pane.dataset.version !== li.dataset.version && !dirty) {
      htmx.ajax("GET", "?node=" + selectedId + "&fragment=pane", { target: "#amp-pane", swap: "outerHTML" });
    }
  }

  apply();
})();
