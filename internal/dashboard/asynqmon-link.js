// Added to asynqmon's pages by execq: a task's page links to the execution
// view of the same execution, which shows its execq status, result and
// live output.
(function () {
  "use strict";
  const task = /\/queues\/([^/]+)\/tasks\/([^/?#]+)/;
  function update() {
    const m = location.pathname.match(task);
    let a = document.getElementById("execq-execution-link");
    if (!m) {
      if (a) a.remove();
      return;
    }
    const href = "/executions/?id=" + m[2];
    if (!a) {
      a = document.createElement("a");
      a.id = "execq-execution-link";
      a.textContent = "execq execution view →";
      a.style.cssText = "position:fixed;right:20px;bottom:20px;z-index:2000;padding:8px 14px;border-radius:6px;" +
        "background:#1f6feb;color:#fff;font:600 14px system-ui,sans-serif;text-decoration:none;box-shadow:0 2px 8px rgba(0,0,0,.25)";
      document.body.appendChild(a);
    }
    a.href = href;
  }
  update();
  setInterval(update, 500);
})();
