/* The audit report's page: draws one execution from the JSON island.
   No network, no dependencies. Long lists are virtualised: only the rows in
   view (plus a margin) exist in the document, so 10,000 steps stay fast. */
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("journal-data").textContent);
  var ROW = 24;
  var MARGIN_ROWS = 8;
  var LONG_LINES = 20;
  var LONG_CHARS = 1500;
  var ICON = { Completed: "\u2713", Failed: "\u2717", Running: "\u25b6", Pending: "\u25cc", Skipped: "\u293c" };
  var printing = false;
  var lists = [];
  var view = null;

  function el(tag, props, children) {
    var node = document.createElement(tag);
    if (props) {
      Object.keys(props).forEach(function (key) {
        var value = props[key];
        if (value === null || value === undefined) { return; }
        if (key === "text") { node.textContent = value; }
        else if (key === "className") { node.className = value; }
        else if (key.slice(0, 2) === "on") { node.addEventListener(key.slice(2), value); }
        else { node.setAttribute(key, value); }
      });
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) { return; }
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function fmtMs(ms) {
    if (ms === null || ms === undefined) { return "-"; }
    if (ms < 1000) { return (Math.round(ms * 10) / 10) + " ms"; }
    if (ms < 120000) { return (Math.round(ms / 100) / 10) + " s"; }
    return (Math.round(ms / 6000) / 10) + " min";
  }

  function pretty(value) {
    if (value === undefined) { return "null"; }
    return JSON.stringify(value, null, 2);
  }

  /* A value, pretty-printed; long ones collapsed behind a button. */
  function valueBlock(label, value) {
    var text = typeof value === "string" && label === "raw" ? value : pretty(value);
    var lines = text.split("\n");
    var pre = el("pre", { className: "value", tabindex: "0", "aria-label": label }, [text]);
    if (lines.length <= LONG_LINES && text.length <= LONG_CHARS) { return pre; }
    var head = lines.slice(0, LONG_LINES).join("\n");
    head = head.length > LONG_CHARS ? head.slice(0, LONG_CHARS) : head;
    pre.textContent = head + "\n\u2026";
    var button = el("button", {
      type: "button", className: "expand", "aria-expanded": "false",
      text: "Show all (" + lines.length + " lines, " + text.length + " characters)"
    });
    button.addEventListener("click", function () {
      var open = button.getAttribute("aria-expanded") === "true";
      pre.textContent = open ? head + "\n\u2026" : text;
      button.setAttribute("aria-expanded", open ? "false" : "true");
      button.textContent = open ? "Show all (" + lines.length + " lines)" : "Collapse";
    });
    return el("div", { className: "long-value" }, [pre, button]);
  }

  function linkTo(id) {
    var href = DATA.links[id];
    if (!href && findExecution(id)) { href = "#" + id; }
    return href ? el("a", { href: href, className: "mono", text: id }) : el("span", { className: "mono", text: id });
  }

  function findExecution(id) {
    for (var i = 0; i < DATA.executions.length; i++) {
      if (DATA.executions[i].id === id) { return DATA.executions[i]; }
    }
    return null;
  }

  function metaTable(rows, caption, extraClass) {
    var body = rows.filter(function (row) { return row; }).map(function (row) {
      var cell = typeof row[1] === "string" ? el("td", { text: row[1] }) : el("td", null, [row[1]]);
      return el("tr", null, [el("th", { scope: "row", text: row[0] }), cell]);
    });
    return el("table", { className: "meta" + (extraClass ? " " + extraClass : "") }, [el("caption", { className: "sr-only", text: caption }), el("tbody", null, body)]);
  }

  /* --- a virtual list: rows exist only while in view ------------------ */
  function VirtualList(scroller, count, makeRow) {
    this.scroller = scroller;
    this.count = count;
    this.makeRow = makeRow;
    this.spacer = el("div", { className: "spacer" });
    this.spacer.style.height = (count * ROW) + "px";
    scroller.style.height = Math.max(3 * ROW, Math.min(480, count * ROW + 2)) + "px";
    scroller.appendChild(this.spacer);
    this.shown = {};
    var self = this;
    scroller.addEventListener("scroll", function () { self.draw(); });
    lists.push(this);
  }
  VirtualList.prototype.draw = function () {
    var first = 0;
    var last = this.count - 1;
    if (!printing) {
      first = Math.max(0, Math.floor(this.scroller.scrollTop / ROW) - MARGIN_ROWS);
      var height = this.scroller.clientHeight || 480;
      last = Math.min(this.count - 1, Math.ceil((this.scroller.scrollTop + height) / ROW) + MARGIN_ROWS);
    }
    var keep = {};
    for (var i = first; i <= last; i++) {
      keep[i] = true;
      if (!this.shown[i]) {
        var row = this.makeRow(i);
        row.style.top = (i * ROW) + "px";
        this.spacer.appendChild(row);
        this.shown[i] = row;
      }
    }
    var self = this;
    Object.keys(this.shown).forEach(function (key) {
      if (!keep[key]) { self.spacer.removeChild(self.shown[key]); delete self.shown[key]; }
    });
  };
  VirtualList.prototype.redraw = function () {
    var self = this;
    Object.keys(this.shown).forEach(function (key) { self.spacer.removeChild(self.shown[key]); });
    this.shown = {};
    this.spacer.style.height = (this.count * ROW) + "px";
    this.draw();
  };
  VirtualList.prototype.reveal = function (i) {
    var top = i * ROW;
    var height = this.scroller.clientHeight;
    if (top < this.scroller.scrollTop) { this.scroller.scrollTop = top; }
    else if (top + ROW > this.scroller.scrollTop + height) { this.scroller.scrollTop = top + ROW - height; }
    this.draw();
    return this.shown[i];
  };

  /* --- one execution ------------------------------------------------- */
  /* Steps arrive as arrays (a smaller file); make them objects, once. */
  function prepare(x) {
    if (x.prepared) { return; }
    x.steps = x.steps.map(function (row) {
      var step = { events: [] };
      x.step_fields.forEach(function (name, k) { step[name] = row[k]; });
      return step;
    });
    x.events.forEach(function (e) { if (e[3] >= 0 && x.steps[e[3]]) { x.steps[e[3]].events.push(e[0]); } });
    x.prepared = true;
  }

  /* A step's input, output, error and times, as its events recorded them. */
  function stepValues(view, s) {
    var v = { input: null, output: null, error: null, started_at: null, ended_at: null };
    s.events.forEach(function (seq) {
      var e = view.bySeq[seq];
      var p = e ? e[5] : null;
      if (!p || typeof p !== "object") { return; }
      if ((e[2] === "StepStarted" || e[2] === "StepAdded") && p.input !== undefined && p.input !== null && v.input === null) { v.input = p.input; }
      if (e[2] === "StepStarted") { v.started_at = p.at; }
      if (e[2] === "StepCompleted") { v.output = p.output === undefined ? null : p.output; v.ended_at = p.at; }
      if (e[2] === "StepFailed") { v.error = p.error || null; v.ended_at = p.at; }
      if (e[2] === "StepSkipped") { v.ended_at = p.at; }
    });
    return v;
  }

  function View(x) {
    prepare(x);
    this.x = x;
    this.rows = [];
    this.bySeq = {};
    var i;
    for (i = 0; i < x.events.length; i++) { this.bySeq[x.events[i][0]] = x.events[i]; }
    for (i = 0; i < (x.intervals || []).length; i++) { this.rows.push({ kind: "interval", i: i }); }
    for (i = 0; i < x.steps.length; i++) { this.rows.push({ kind: "step", i: i }); }
    this.selected = -1;
    this.diverged = x.replay && x.replay.divergence && x.replay.divergence.step >= 0 ? x.replay.divergence.step : -1;
    this.total = this.timeSpan();
    this.eventTime = {};
    for (i = 0; i < x.events.length; i++) { this.eventTime[x.events[i][0]] = x.events[i][1]; }
  }

  View.prototype.timeSpan = function () {
    var x = this.x;
    var end = x.end_ms || 0;
    x.steps.forEach(function (s) { end = Math.max(end, s.end || 0, s.start || 0); });
    x.events.forEach(function (e) { end = Math.max(end, e[1] || 0); });
    return end > 0 ? end : 1;
  };

  View.prototype.stepTimes = function (s) {
    var start = s.start;
    if (start === null || start === undefined) { start = this.eventTime[s.events[0]] || 0; }
    var end = s.end === null || s.end === undefined ? start : s.end;
    return [start, end];
  };

  View.prototype.render = function (main) {
    lists = [];
    main.textContent = "";
    document.getElementById("title").textContent = "Audit report: " + (this.x.flow || "execution") + " " + this.x.id;
    main.appendChild(this.banners());
    main.appendChild(el("h2", { text: "Execution" }));
    main.appendChild(this.header());
    var timeline = this.timeline();
    this.details = el("aside", { id: "details", "aria-label": "Step details", tabindex: "-1" },
      [el("p", { className: "muted", text: "Select a step (click it, or focus it and press Enter) to see its input, output, error and events." })]);
    main.appendChild(el("div", { className: "layout" }, [timeline, this.details]));
    main.appendChild(this.eventTable());
    lists.forEach(function (list) { list.draw(); });
    if (this.diverged >= 0) { this.select(this.rowOfStep(this.diverged), false); }
  };

  View.prototype.banners = function () {
    var x = this.x;
    var box = el("section", { "aria-label": "Verdicts" });
    if (!x.chain.verified) {
      box.appendChild(el("div", { className: "banner bad", role: "alert", id: "chain-status" }, [
        el("h2", { text: "\u2717 Chain broken" + (x.chain.seq ? " at seq " + x.chain.seq : "") }),
        el("p", { text: x.chain.message }),
        el("p", { text: "Events from that sequence on cannot be trusted; they are shown as stored, marked in the event table." })
      ]));
    } else {
      box.appendChild(el("div", { className: "banner good", id: "chain-status" }, [
        el("strong", { text: "\u2713 Chain verified" }), " \u2014 " + x.chain.message
      ]));
    }
    if (x.fold_error) {
      box.appendChild(el("div", { className: "banner bad", role: "alert" }, [
        el("h2", { text: "\u2717 The history does not fold" }), el("p", { text: x.fold_error })
      ]));
    }
    if (x.replay) { box.appendChild(this.replayBanner(x.replay)); }
    return box;
  };

  View.prototype.replayBanner = function (r) {
    var self = this;
    var good = r.verdict === "ok";
    var kind = good ? "good" : (r.verdict === "not_rerun" ? "warn" : "bad");
    var box = el("div", { className: "banner " + kind, id: "replay-verdict", role: good ? null : "alert" }, [
      el("h2", { text: (good ? "\u2713" : "\u2717") + " Replay: " + r.verdict }),
      el("p", { text: r.message })
    ]);
    if (r.schema_changes && r.schema_changes.length) {
      box.appendChild(el("p", { text: "What changed between the recorded schema and today's flow:" }));
      box.appendChild(el("ul", { id: "schema-changes" }, r.schema_changes.map(function (c) { return el("li", { className: "mono", text: c }); })));
    }
    if (r.recorded_schema || r.current_schema) {
      box.appendChild(metaTable([["recorded schema", r.recorded_schema || "-"], ["current schema", r.current_schema || "-"]], "Schemas"));
    }
    var d = r.divergence;
    if (d) {
      var step = d.step >= 0 ? this.x.steps[d.step] : null;
      box.appendChild(el("p", null, [
        "Diverged at step index " + d.index + (step ? " (" + step.name + ")" : "") + ": " + d.reason + " ",
        step ? el("button", { type: "button", text: "Go to the diverged step", onclick: function () { self.select(self.rowOfStep(d.step), true); } }) : null
      ]));
      box.appendChild(this.sideBySide(d));
    }
    return box;
  };

  View.prototype.sideBySide = function (d) {
    return el("div", { className: "side-by-side", role: "group", "aria-label": "Recorded against produced" }, [
      el("div", null, [el("h3", { text: "Recorded" }), valueBlock("recorded", { step: d.recorded_step, value: d.recorded_value })]),
      el("div", null, [el("h3", { text: "Produced today" }), valueBlock("produced", { step: d.produced_step, value: d.produced_value })])
    ]);
  };

  View.prototype.header = function () {
    var x = this.x;
    var parent = null;
    if (x.parent) {
      var pid = x.parent.execution_id;
      parent = el("span", null, [pid ? linkTo(pid) : el("span", { text: x.parent.id }),
        " (" + x.parent.type + (x.parent.type === "Step" ? " " + x.parent.id : "") + ")"]);
    }
    var children = x.children.length ? el("span", null, x.children.reduce(function (acc, id, i) {
      if (i) { acc.push(", "); }
      acc.push(linkTo(id));
      return acc;
    }, [])) : "none";
    return metaTable([
      ["Execution id", el("span", { className: "mono", text: x.id })],
      ["Tenant", x.tenant],
      ["Flow", x.flow || "-"],
      ["State", x.state || "-"],
      ["Start", x.started_at || x.created_at || "-"],
      ["End", x.ended_at || "-"],
      ["Duration", fmtMs(x.duration_ms)],
      ["Schema version", el("span", { className: "mono", text: x.schema_version || "-" })],
      ["Head", el("span", { className: "mono", text: x.head || "-" })],
      ["Chain", (x.chain.verified ? "verified (" + (x.alg || "sha256") : "BROKEN at seq " + x.chain.seq + " (" + (x.alg || "sha256")) +
        (x.binding === "v1" ? "; v1: the genesis binds only the execution id" : x.binding ? "; " + x.binding + ": the genesis binds tenant, id, flow, parent and origin" : "") +
        (x.key_id ? "; head MAC key " + x.key_id : "") + ")" + (x.chain.verified ? "" : ": " + x.chain.message)],
      ["Ledger", x.ledger || "no ledger status recorded"],
      ["Parent", parent || "none"],
      ["Children", children],
      x.origin ? ["Fork origin", el("span", null, [linkTo(x.origin.execution_id), x.origin.seq ? " at seq " + x.origin.seq : ""])] : null,
      x.source ? ["Read from", x.source] : null,
      x.error ? ["Error", x.error.category + ": " + x.error.message] : null
    ], "Execution summary", "summary");
  };

  View.prototype.legend = function () {
    var items = ["Completed", "Failed", "Running", "Pending", "Skipped"].map(function (s) {
      return el("span", { className: "s-" + s }, [el("span", { className: "swatch", "aria-hidden": "true" }, [el("span", { className: "bar" })]),
        el("span", { className: "icon", "aria-hidden": "true", text: ICON[s] }), s]);
    });
    items.push(el("span", { className: "interval" }, [el("span", { className: "swatch", "aria-hidden": "true" }, [el("span", { className: "bar" })]), "waiting / paused"]));
    return el("div", { className: "legend", "aria-label": "Legend" }, items);
  };

  View.prototype.axis = function () {
    var total = this.total;
    return el("div", { className: "axis", "aria-hidden": "true" }, [0, 0.25, 0.5, 0.75, 1].map(function (f) {
      var tick = el("span", { text: fmtMs(total * f) });
      tick.style.left = (f * 100) + "%";
      return tick;
    }));
  };

  View.prototype.timeline = function () {
    var self = this;
    var scroller = el("div", { className: "scroller", id: "timeline", role: "group",
      "aria-label": "Timeline: " + this.x.steps.length + " steps; arrow keys move, Enter shows details" });
    this.list = new VirtualList(scroller, this.rows.length, function (i) { return self.makeRow(i); });
    scroller.addEventListener("keydown", function (e) { self.onKey(e); });
    return el("section", { "aria-labelledby": "timeline-title" }, [
      el("h2", { id: "timeline-title", text: "Timeline (" + this.x.steps.length + " steps, " + fmtMs(this.total) + ")" }),
      this.legend(), this.axis(), scroller
    ]);
  };

  View.prototype.rowOfStep = function (stepIndex) { return (this.x.intervals || []).length + stepIndex; };

  View.prototype.makeRow = function (r) {
    var self = this;
    var row = this.rows[r];
    var button = el("button", { type: "button", className: "row", "data-row": String(r),
      tabindex: r === Math.max(this.selected, 0) ? "0" : "-1", onclick: function () { self.select(r, false); } });
    if (r === this.selected) { button.className += " selected"; button.setAttribute("aria-current", "true"); }
    var span;
    var label;
    if (row.kind === "interval") {
      var iv = this.x.intervals[row.i];
      button.className += " interval";
      span = [iv.start || 0, iv.end === null ? this.total : iv.end];
      var what = iv.kind === "waiting" ? "Waiting (" + iv.reason + ")" : "Paused";
      var who = iv.approver ? ", " + (iv.outcome || "approved") + " by " + iv.approver : (iv.outcome === "timed out" ? ", timed out" : "");
      label = [el("span", { className: "icon", "aria-hidden": "true", text: "\u2016" }), what + who];
      button.setAttribute("aria-label", what + who + ", " + fmtMs(span[1] - span[0]));
    } else {
      var s = this.x.steps[row.i];
      button.className += " step s-" + s.state;
      button.setAttribute("data-step", String(row.i));
      span = this.stepTimes(s);
      label = [el("span", { className: "icon", "aria-hidden": "true", text: ICON[s.state] || "?" }),
        el("span", { text: "#" + row.i + " " + s.name })];
      label[1].style.paddingLeft = (s.depth * 12) + "px";
      var words = "Step " + row.i + ", " + s.name + ", " + s.type + ", " + s.state + ", " + fmtMs(s.duration_ms);
      var error = s.state === "Failed" ? stepValues(this, s).error : null;
      if (error) { label.push(el("span", { className: "badge err", text: error.category })); words += ", " + error.category; }
      if (s.retry_of >= 0) { label.push(el("span", { className: "badge retry", text: "\u21bb retry of #" + s.retry_of })); words += ", retry of step " + s.retry_of; }
      if (s.depth) { words += ", nested in step " + s.parent; }
      if (!this.x.chain.verified && s.events.length && s.events[s.events.length - 1] >= (this.x.chain.seq || 1)) {
        label.push(el("span", { className: "badge err", text: "\u26a0 unverified" }));
        words += ", recorded at or after the chain break: unverified";
      }
      if (row.i === this.diverged) {
        button.className += " diverged";
        label.push(el("span", { className: "badge div", text: "\u26a0 diverged" }));
        words += ", the replay diverged here";
      }
      button.setAttribute("aria-label", words);
    }
    var bar = el("span", { className: "bar" });
    bar.style.left = (span[0] / this.total * 100) + "%";
    bar.style.width = (Math.max(0, span[1] - span[0]) / this.total * 100) + "%";
    button.appendChild(el("span", { className: "label" }, label));
    button.appendChild(el("span", { className: "track", "aria-hidden": "true" }, [bar]));
    return button;
  };

  View.prototype.onKey = function (e) {
    var r = parseInt(e.target.getAttribute("data-row") || "-1", 10);
    if (r < 0) { return; }
    var page = Math.max(1, Math.floor(this.list.scroller.clientHeight / ROW) - 1);
    var to = { ArrowDown: r + 1, ArrowUp: r - 1, PageDown: r + page, PageUp: r - page, Home: 0, End: this.rows.length - 1 }[e.key];
    if (to === undefined) { return; }
    e.preventDefault();
    this.focusRow(Math.max(0, Math.min(this.rows.length - 1, to)));
  };

  View.prototype.focusRow = function (r) {
    var old = this.list.shown[Math.max(this.selected, 0)];
    if (old) { old.setAttribute("tabindex", "-1"); }
    var button = this.list.reveal(r);
    if (button) { button.setAttribute("tabindex", "0"); button.focus(); }
  };

  View.prototype.select = function (r, focus) {
    var previous = this.list.shown[this.selected] || this.list.shown[0];
    if (previous) {
      previous.classList.remove("selected");
      previous.removeAttribute("aria-current");
      previous.setAttribute("tabindex", "-1");
    }
    this.selected = r;
    var button = this.list.reveal(r);
    if (button) {
      button.classList.add("selected");
      button.setAttribute("aria-current", "true");
      button.setAttribute("tabindex", "0");
      if (focus !== false) { button.focus(); }
    }
    var row = this.rows[r];
    var shown = row.kind === "step" ? "step #" + row.i + " " + this.x.steps[row.i].name : "the " + this.x.intervals[row.i].kind + " span";
    document.getElementById("status").textContent = "Showing the details of " + shown;
    this.details.textContent = "";
    if (row.kind === "step") { this.stepDetails(row.i); } else { this.intervalDetails(row.i); }
  };

  View.prototype.jumpToStep = function (i) {
    var self = this;
    return el("button", { type: "button", className: "linkish", text: "#" + i + " " + this.x.steps[i].name,
      onclick: function () { self.select(self.rowOfStep(i), true); } });
  };

  View.prototype.stepDetails = function (i) {
    var s = this.x.steps[i];
    var v = stepValues(this, s);
    var d = this.details;
    d.appendChild(el("h2", { id: "details-title", text: "Step #" + i + ": " + s.name }));
    var source = s.source ? (s.source.source_type || "InitialPlan") + (s.source.reason ? " (" + s.source.reason + ")" : "") : "InitialPlan";
    d.appendChild(metaTable([
      ["Step id", el("span", { className: "mono", text: s.id })],
      ["Type", s.type], ["State", (ICON[s.state] || "") + " " + s.state],
      ["Callable", s.callable_id || "-"], ["Source", source],
      s.parent >= 0 ? ["Nested in", this.jumpToStep(s.parent)] : null,
      s.retry_of >= 0 ? ["Retry of", this.jumpToStep(s.retry_of)] : null,
      ["Started", v.started_at || "-"], ["Ended", v.ended_at || "-"],
      ["Duration", fmtMs(s.duration_ms)],
      ["Timing", "+" + fmtMs(s.start) + " to +" + fmtMs(s.end) + " from the execution's start"]
    ], "Step summary"));
    var r = this.x.replay;
    if (r && r.divergence && r.divergence.step === i) {
      d.appendChild(el("h3", { text: "\u26a0 The replay diverged at this step: " + r.divergence.reason }));
      d.appendChild(this.sideBySide(r.divergence));
    }
    d.appendChild(el("h3", { text: "Input" }));
    d.appendChild(valueBlock("input", v.input));
    d.appendChild(el("h3", { text: "Output" }));
    d.appendChild(el("div", { id: "step-output" }, [valueBlock("output", v.output)]));
    var err = v.error;
    if (err) {
      d.appendChild(el("h3", { text: "Error: " + err.category + " (attempt " + (err.attempt || 1) + ")" }));
      d.appendChild(metaTable([
        ["Category", err.category], ["Message", err.message], ["Attempt", String(err.attempt || 1)],
        ["Retry policy", err.retry_policy ? pretty(err.retry_policy) : "the category's default"]
      ], "Error"));
      d.appendChild(valueBlock("error", err));
    }
    d.appendChild(this.stepEvents(s));
  };

  View.prototype.stepEvents = function (s) {
    var bySeq = this.bySeq;
    var broken = this.x.chain.verified ? Infinity : (this.x.chain.seq || 1);
    var rows = s.events.map(function (seq) {
      var e = bySeq[seq];
      var payload = el("details", { className: "value" }, [el("summary", { text: "payload" }), valueBlock("event " + seq, e[5])]);
      return el("tr", { className: seq >= broken ? "broken" : null }, [el("td", { text: String(e[0]) }), el("td", { text: e[2] }),
        el("td", { text: "+" + fmtMs(e[1]) }), el("td", null, [el("span", { className: "mono", text: e[4] }), payload])]);
    });
    return el("div", null, [el("h3", { text: "Events of this step" }), el("table", { className: "step-events" }, [
      el("thead", null, [el("tr", null, ["seq", "event", "time", "hash"].map(function (h) { return el("th", { scope: "col", text: h }); }))]),
      el("tbody", null, rows)])]);
  };

  View.prototype.intervalDetails = function (i) {
    var iv = this.x.intervals[i];
    this.details.appendChild(el("h2", { text: iv.kind === "waiting" ? "Waiting (" + iv.reason + ")" : "Paused" }));
    this.details.appendChild(metaTable([
      ["Reason", iv.reason || "-"], ["Detail", iv.detail || "-"], ["Answered by", iv.approver ? iv.approver + " (" + (iv.outcome || "approved") + ")" : "not recorded"], ["Ended by", iv.outcome || "-"],
      ["From", "seq " + iv.start_seq + ", +" + fmtMs(iv.start)],
      ["Until", iv.end_seq ? "seq " + iv.end_seq + ", +" + fmtMs(iv.end) : "still open"]
    ], "Interval"));
  };

  View.prototype.eventTable = function () {
    var self = this;
    var x = this.x;
    var broken = x.chain.verified ? Infinity : (x.chain.seq || 1);
    var shown = x.events.map(function (e, i) { return i; });
    var scroller = el("div", { className: "events scroller", role: "rowgroup" });
    var list = new VirtualList(scroller, shown.length, function (n) {
      var e = x.events[shown[n]];
      var step = e[3] >= 0 ? "#" + e[3] + " " + x.steps[e[3]].name : "(execution)";
      return el("div", { className: "event-row" + (e[0] >= broken ? " broken" : ""), role: "row", "aria-rowindex": String(n + 2) }, [
        el("span", { role: "cell", text: String(e[0]) }), el("span", { role: "cell", text: "+" + fmtMs(e[1]) }),
        el("span", { role: "cell", text: e[2] }), el("span", { role: "cell", text: step }),
        el("span", { role: "cell", className: "mono", text: e[4] })]);
    });
    var stepFilter = el("select", { id: "filter-step" }, [el("option", { value: "", text: "all steps" }), el("option", { value: "-1", text: "(execution events)" })]
      .concat(x.steps.map(function (s, i) { return el("option", { value: String(i), text: "#" + i + " " + s.name }); })));
    var tags = [];
    x.events.forEach(function (e) { if (tags.indexOf(e[2]) < 0) { tags.push(e[2]); } });
    tags.sort();
    var typeFilter = el("select", { id: "filter-type" }, [el("option", { value: "", text: "all event types" })]
      .concat(tags.map(function (t) { return el("option", { value: t, text: t }); })));
    var count = el("span", { className: "muted", "aria-live": "polite" });
    function apply() {
      var step = stepFilter.value;
      var tag = typeFilter.value;
      shown = [];
      x.events.forEach(function (e, i) {
        if (step !== "" && String(e[3]) !== step) { return; }
        if (tag !== "" && e[2] !== tag) { return; }
        shown.push(i);
      });
      list.count = shown.length;
      list.scroller.scrollTop = 0;
      list.redraw();
      count.textContent = shown.length + " of " + x.events.length + " events";
      list.scroller.parentNode.setAttribute("aria-rowcount", String(shown.length + 1));
    }
    stepFilter.addEventListener("change", apply);
    typeFilter.addEventListener("change", apply);
    count.textContent = x.events.length + " events";
    self.eventList = list;
    return el("section", { "aria-labelledby": "events-title" }, [
      el("h2", { id: "events-title", text: "Events" }),
      el("div", { className: "filters" }, [el("label", null, ["Step ", stepFilter]), el("label", null, ["Event type ", typeFilter]), count]),
      el("div", { role: "table", "aria-label": "Events", "aria-rowcount": String(x.events.length + 1) }, [
        el("div", { role: "rowgroup" }, [el("div", { className: "table-head", role: "row", "aria-rowindex": "1" },
          ["seq", "time", "event", "step", "hash"].map(function (h) { return el("span", { role: "columnheader", text: h }); }))]),
        scroller
      ])
    ]);
  };

  /* --- navigation between executions in one file ---------------------- */
  function navigation(active) {
    var nav = document.getElementById("executions");
    if (DATA.executions.length < 2) { return; }
    nav.hidden = false;
    nav.textContent = "";
    nav.appendChild(el("ul", null, DATA.executions.map(function (x) {
      return el("li", null, [el("a", { href: "#" + x.id, "aria-current": x.id === active ? "page" : null,
        text: (x.flow || "execution") + " " + x.id + (x.chain.verified ? "" : " (chain broken)") })]);
    })));
  }

  function showFromHash() {
    var id = decodeURIComponent((location.hash || "").slice(1));
    var x = findExecution(id) || DATA.executions[0];
    if (!x || (view && view.x === x)) { return; }
    navigation(x.id);
    view = new View(x);
    view.render(document.getElementById("report"));
  }

  window.addEventListener("hashchange", showFromHash);
  window.addEventListener("beforeprint", function () { printing = true; lists.forEach(function (l) { l.redraw(); }); });
  window.addEventListener("afterprint", function () { printing = false; lists.forEach(function (l) { l.redraw(); }); });
  showFromHash();
  document.body.setAttribute("data-ready", "true");
}());
