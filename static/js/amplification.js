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

  // A node the person chose: once its pane arrives, bring it into view if it is off screen
  // (on a phone the pane sits below the whole outline).
  let revealPane = false;
  function reveal() {
    const pane = document.getElementById("amp-pane");
    if (!revealPane || !pane || pane.dataset.node !== selectedId) return;
    revealPane = false;
    const box = pane.getBoundingClientRect();
    if (box.top < 0 || box.top > window.innerHeight * 0.5) pane.scrollIntoView({ block: "start" });
  }
  document.body.addEventListener("htmx:afterSettle", reveal);

  // `/` searches from anywhere on the page, unless the person is typing somewhere.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
    const input = document.getElementById("amp-q");
    if (!input) return;
    event.preventDefault();
    input.focus();
    input.select();
  });

  root.addEventListener("keydown", (event) => {
    const li = event.target.closest && event.target.closest("[role=treeitem]");
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
    if (li && event.target.closest("a")) {
      selectedId = li.dataset.id;
      dirty = false;
      revealPane = true;
      apply();
    }
  });

  // Search in place: the matches are marked (and counted) without a reload; the address
  // keeps the query, as the form's own GET would.
  const search = root.querySelector(".amp-search");
  if (search) {
    search.addEventListener("submit", (event) => {
      event.preventDefault();
      const url = new URL(location.href);
      const needle = document.getElementById("amp-q").value.trim();
      if (needle) url.searchParams.set("q", needle); else url.searchParams.delete("q");
      history.replaceState(history.state, "", url);
      const first = filter();
      if (first) first.scrollIntoView({ block: "nearest" });
    });
  }

  root.addEventListener("input", (event) => {
    if (event.target.id === "amp-q") filter();
    else if (event.target.closest("[data-dirty-guard]")) dirty = true;
  });

  // Marks the nodes whose question or answer contains the search text (as the server does
  // for ?q=), says how many, and returns the first match.
  function filter() {
    const input = document.getElementById("amp-q");
    const needle = (input ? input.value : "").trim().toLowerCase();
    let first = null;
    let count = 0;
    for (const li of items()) {
      const text = Array.from(li.querySelectorAll(".amp-q, .amp-a"), (el) => el.textContent)
        .join(" ").toLowerCase();
      const hit = Boolean(needle) && text.includes(needle);
      li.classList.toggle("amp-match", hit);
      if (hit) { count += 1; first = first || li; }
    }
    const status = document.getElementById("amp-search-count");
    if (status) {
      status.textContent = !needle ? "" : count === 0 ? "No node matches."
        : count === 1 ? "1 node matches." : count + " nodes match.";
    }
    return first;
  }

  // What the live status says about the page's buttons: nothing to resume or hand over once
  // the tree is done.
  function syncStatus() {
    const stats = document.getElementById("amp-stats");
    const done = Boolean(stats) && stats.dataset.status === "done";
    for (const el of root.querySelectorAll("[data-until-done]")) el.hidden = done;
  }

  // The socket replaced the outline (which the server renders without this page's collapsed
  // nodes, selection or search): restore them and keyboard focus in the same task as the swap
  // (so no key press lands on the page meanwhile), then refresh the open node if it changed
  // (unless the person is typing in one of its forms). This waits for the message's own event:
  // htmx settles a swap by putting back, on each element with an id, the attributes the
  // server sent, which would undo anything restored at the swap itself.
  let shown = outline();
  document.body.addEventListener("htmx:wsAfterMessage", () => {
    syncStatus();
    if (outline() !== shown) {
      shown = outline();
      apply();
      if (focusedId && (document.activeElement === document.body || !document.activeElement)) {
        const li = byId(focusedId);
        if (li) focus(li);
      }
    }
    setTimeout(refreshPane, 0);
  });
  function refreshPane() {
    const pane = document.getElementById("amp-pane");
    const li = selectedId && byId(selectedId);
    if (pane && li && pane.dataset.node === selectedId && pane.dataset.version !== li.dataset.version && !dirty) {
      htmx.ajax("GET", "?node=" + selectedId + "&fragment=pane", { target: "#amp-pane", swap: "outerHTML" });
    }
  }

  apply();
  syncStatus();
})();
