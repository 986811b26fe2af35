// fray dashboard: live pages over server-sent events, and the job log tail.
// No libraries; every page works (without live updates) with scripts off.
(function () {
  "use strict";
  var main = document.getElementById("content");
  var dot = document.getElementById("live");

  function setLive(state, title) {
    if (!dot) return;
    dot.className = "live " + state;
    dot.title = title;
  }

  // The page's own URL answers an EventSource with its content, re-rendered
  // on every change.
  if (main && main.dataset.live) {
    var es = new EventSource(location.pathname + location.search);
    es.addEventListener("content", function (e) {
      main.innerHTML = e.data;
    });
    es.addEventListener("gone", function (e) {
      setLive("off", e.data);
    });
    es.onopen = function () { setLive("on", "updating live"); };
    es.onerror = function () { setLive("off", "reconnecting…"); };
  }

  // Filters apply as soon as they change.
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t && t.hasAttribute && t.hasAttribute("data-autosubmit") && t.form) t.form.submit();
  });

  // Buttons that change something ask first.
  document.addEventListener("submit", function (e) {
    var f = e.target;
    var q = f && f.getAttribute && f.getAttribute("data-confirm");
    if (q && !window.confirm(q)) e.preventDefault();
  });

  // The job log: lines arrive as JSON arrays; the last maxLines are kept.
  var log = document.getElementById("log");
  if (log && log.dataset.src) {
    var maxLines = 5000, count = 0, multiTask = false;
    var follow = document.getElementById("log-follow");
    var counter = document.getElementById("log-count");
    var empty = document.getElementById("log-empty");
    var seen = {};
    var src = new EventSource(log.dataset.src);
    src.addEventListener("skipped", function (e) {
      if (log.querySelector(".skipped")) return;
      var note = document.createElement("span");
      note.className = "ln muted skipped";
      note.textContent = "… earlier output not shown here (" + JSON.parse(e.data).batches + " batches); `fray logs` prints all of it";
      log.insertBefore(note, log.firstChild);
    });
    src.addEventListener("lines", function (e) {
      var lines = JSON.parse(e.data);
      var frag = document.createDocumentFragment();
      lines.forEach(function (l) {
        var key = l.task + "/" + l.attempt + "/" + l.n;
        if (seen[key]) return; // a reconnect replays from the start
        seen[key] = true;
        if (l.task > 0) multiTask = true;
        var div = document.createElement("span");
        div.className = "ln";
        var tk = document.createElement("span");
        tk.className = "tk";
        tk.textContent = (multiTask ? "[" + l.task + "] " : "") + (l.n + 1);
        div.appendChild(tk);
        div.appendChild(document.createTextNode(l.text));
        frag.appendChild(div);
        count++;
      });
      if (empty && count > 0) { empty.remove(); empty = null; }
      log.appendChild(frag);
      while (log.childElementCount > maxLines) log.removeChild(log.firstElementChild);
      if (counter) counter.textContent = count + (count === 1 ? " line" : " lines");
      if (!follow || follow.checked) log.scrollTop = log.scrollHeight;
    });
  }
})();
