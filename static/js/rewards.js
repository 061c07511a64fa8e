// Live training progress on a reward model's page: the worker's (step, loss) events arrive
// over the websocket; this moves the bar and draws the loss curve. When a run ends the page
// reloads, so the verdict, the versions table and the plots come from the server.
(function () {
  "use strict";
  const card = document.getElementById("rm-live");
  if (!card) return;
  const bar = document.getElementById("rm-live-bar");
  const statusText = document.getElementById("rm-live-status");
  const stepText = document.getElementById("rm-live-step");
  const svg = document.querySelector("#rm-loss");
  const W = 320, H = 160, PAD = 28;
  const ENDED = ["active", "rejected", "failed", "retired"];
  let version = null;
  let points = [];

  function draw() {
    if (!svg) return;
    const line = svg.querySelector("polyline");
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs), y1 = Math.max(...ys, 1e-6);
    const sx = (x) => (x1 === x0 ? (PAD + W - 8) / 2 : PAD + ((x - x0) / (x1 - x0)) * (W - 8 - PAD));
    const sy = (y) => H - PAD + (y / y1) * (8 - (H - PAD));
    line.setAttribute("points", points.map((p) => sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1)).join(" "));
    svg.dataset.livePoints = String(points.length);
    const ticks = svg.querySelectorAll("text.tick");
    if (ticks.length >= 2) { ticks[0].textContent = y1.toFixed(3); ticks[1].textContent = "0.000"; }
  }

  function onEvent(event) {
    if (ENDED.includes(event.status)) {
      if (String(event.version) === card.dataset.running || version === event.version) {
        statusText.textContent = "v" + event.number + " " + event.status;
        window.setTimeout(() => window.location.reload(), 300);
      }
      return;
    }
    if (version !== event.version) { version = event.version; points = []; card.dataset.running = String(event.version); }
    statusText.textContent = "v" + event.number + " " + event.status;
    const percent = event.total ? Math.min(100, Math.round((100 * event.step) / event.total)) : 0;
    bar.style.width = (event.status === "evaluating" ? 100 : percent) + "%";
    stepText.textContent = event.status === "evaluating" ? "evaluating on the held-out pairs…" : "step " + event.step + " of " + event.total;
    if (typeof event.loss === "number" && isFinite(event.loss) && event.status === "training") {
      points.push([event.step, event.loss]);
      draw();
    }
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + card.dataset.ws);
    socket.onmessage = (message) => onEvent(JSON.parse(message.data));
    socket.onclose = () => window.setTimeout(connect, 2000);
  }
  connect();
})();
