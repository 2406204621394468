fetch("/api/time").then((r) => r.json()).then((t) => {
  document.getElementById("time").textContent = t.now;
});
