// Draw the thread's graph with the locally served mermaid (nothing is fetched from elsewhere).
mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });
mermaid.run({ querySelector: "pre.mermaid" }).then(function () {
  document.body.setAttribute("data-graph-drawn", "yes");
});
