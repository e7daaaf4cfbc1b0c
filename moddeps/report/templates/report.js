"use strict";
// moddeps' report page: draws everything from the JSON document in #moddeps-data.
// Every value is put in the page with textContent / setAttribute, never as markup.
(function () {
  const D = JSON.parse(document.getElementById("moddeps-data").textContent);
  const SVGNS = "http://www.w3.org/2000/svg";
  const app = document.getElementById("app");

  function put(e, kids) {
    for (const k of kids) {
      if (k === null || k === undefined || k === false) continue;
      e.appendChild(typeof k === "object" ? k : document.createTextNode(String(k)));
    }
    return e;
  }
  function attrs(e, a) {
    for (const [k, v] of Object.entries(a || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "class") e.setAttribute("class", v);
      else e.setAttribute(k, String(v));
    }
    return e;
  }
  function el(tag, a, ...kids) { return put(attrs(document.createElement(tag), a), kids); }
  function sv(tag, a, ...kids) { return put(attrs(document.createElementNS(SVGNS, tag), a), kids); }
  function text(v) { return v === null || v === undefined ? "" : String(v); }
  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
  function kv(rows) {
    return el("table", { class: "kv" }, el("tbody", null, ...rows.map(([k, v]) =>
      el("tr", null, el("th", null, k), el("td", { class: "mono" }, text(v === null ? "-" : v))))));
  }
  function card(n, label, cls) { return el("div", { class: "card " + (cls || "") }, el("div", { class: "n" }, n), label); }
  function header() {
    put(app, [el("h1", null, D.title),
      el("div", { class: "muted" }, D.tool + " " + D.version + (D.timestamp ? " · " + D.timestamp : ""))]);
  }

  // A sortable, searchable table.  cols: [{label, key(row)->value, num, cls, render(row)->node|string}]
  function dataTable(opts) {
    const table = el("table", { id: opts.id });
    const tbody = el("tbody");
    let sortCol = opts.sort === undefined ? -1 : opts.sort, sortDir = 1;
    const buttons = [];
    const head = el("tr", null, ...opts.cols.map((c, i) => {
      const b = el("button", { type: "button", onclick: () => { sortDir = sortCol === i ? -sortDir : 1; sortCol = i; draw(); } }, c.label);
      buttons.push(b);
      return el("th", { class: c.num ? "num" : null }, b);
    }));
    put(table, [el("thead", null, head), tbody]);
    const count = el("span", { class: "muted", id: opts.id + "-count" });
    let rows = opts.rows.slice(), shown = rows;
    function cmp(a, b) {
      const c = opts.cols[sortCol], x = c.key(a), y = c.key(b);
      if (x === y) return 0;
      if (x === null || x === undefined || x === "") return 1;
      if (y === null || y === undefined || y === "") return -1;
      return (c.num ? x - y : String(x).localeCompare(String(y))) * sortDir;
    }
    function draw() {
      buttons.forEach((b, i) => b.setAttribute("class", i === sortCol ? (sortDir > 0 ? "asc" : "desc") : ""));
      shown = rows.filter(opts.filter);
      if (sortCol >= 0) shown.sort(cmp);
      const limit = opts.limit || 5000;
      tbody.replaceChildren(...shown.slice(0, limit).map((r) => {
        const tr = el("tr", { class: opts.onclick ? "row" : null }, ...opts.cols.map((c) =>
          el("td", { class: (c.num ? "num " : "") + (c.cls || "") }, c.render ? c.render(r) : text(c.key(r)))));
        if (opts.onclick) tr.addEventListener("click", () => opts.onclick(r, tr));
        if (opts.decorate) opts.decorate(r, tr);
        return tr;
      }));
      count.textContent = shown.length + " of " + rows.length + " shown" +
        (shown.length > limit ? " (first " + limit + " listed: narrow the search)" : "");
    }
    return { table, count, draw, tbody };
  }
  function search(id, placeholder, oninput) {
    return el("input", { type: "search", id, placeholder, oninput, "aria-label": placeholder });
  }
  function options(id, label, values, onchange) {
    return el("select", { id, onchange, "aria-label": label },
      el("option", { value: "" }, "all " + label), ...values.map((v) => el("option", { value: v }, v)));
  }
  function sevCell(s) { return el("span", { class: "sev " + s }, s); }

  // ------------------------------------------------------------------ audit
  function audit() {
    header();
    const S = D.summary, C = D.columns, M = D.modules;
    const col = {}; C.forEach((c, i) => { col[c] = i; });
    const index = new Map(M.map((m, i) => [m[col.name], i]));
    const users = M.map(() => []);
    D.deps.forEach((ds, i) => ds.forEach((d, j) => users[d].push([i, j])));
    const inCycle = new Set(); D.cycles.forEach((c) => c.forEach((i) => inCycle.add(i)));

    // summary
    put(app, [el("h2", null, "Summary"),
      el("div", { class: "cards", id: "summary" }, card(S.modules, "modules"),
        ...Object.entries(S.by_severity).map(([s, n]) => card(n, plural(n, s).replace(/^\d+ /, ""), s)),
        card(D.cycles.length, plural(D.cycles.length, "cycle").replace(/^\d+ /, ""), D.cycles.length ? "error" : "")),
      kv([["kernel", D.kernel], ["kmod matched", D.kmod], ...D.inputs]),
      el("h3", null, "Findings by kind"),
      Object.keys(S.by_kind).length ? kv(Object.entries(S.by_kind)) : el("p", null, "No findings."),
      S.notes.length ? el("ul", { class: "muted" }, ...S.notes.map((n) => el("li", null, "note: " + n))) : null]);

    // modules and the neighbourhood picture
    let selected = -1, selectedRow = null, depth = 1;
    const q = { text: "" };
    const mt = dataTable({
      id: "module-table", rows: M.map((m, i) => i), sort: 0,
      cols: [
        { label: "name", key: (i) => M[i][col.name], cls: "mono" },
        { label: "path", key: (i) => M[i][col.path], cls: "mono" },
        { label: "size", key: (i) => M[i][col.size], num: true },
        { label: "compr.", key: (i) => M[i][col.compression] },
        { label: "signer", key: (i) => M[i][col.signer], render: (i) => M[i][col.signer] === null ? el("span", { class: "muted" }, "unsigned") : text(M[i][col.signer]) },
        { label: "exports", key: (i) => M[i][col.exports], num: true },
        { label: "needs", key: (i) => M[i][col.needs], num: true },
        { label: "dependents", key: (i) => M[i][col.dependents], num: true },
        { label: "depth", key: (i) => M[i][col.depth], num: true, render: (i) => M[i][col.depth] === null ? el("span", { class: "bad", title: "in or behind a dependency cycle" }, "cycle") : text(M[i][col.depth]) },
      ],
      filter: (i) => !q.text || [col.name, col.path, col.description, col.signer].some((c) => M[i][c] !== null && String(M[i][c]).toLowerCase().includes(q.text)),
      onclick: (i) => select(i),
      decorate: (i, tr) => { tr.setAttribute("data-name", M[i][col.name]); if (i === selected) { tr.classList.add("selected"); selectedRow = tr; } },
    });
    const detail = el("div", { id: "module-detail" });
    const picture = el("div", { class: "graph", id: "neighbourhood" });
    const depthSel = el("select", { id: "depth", "aria-label": "levels", onchange: (e) => { depth = Number(e.target.value); if (selected >= 0) select(selected); } },
      ...[1, 2, 3].map((n) => el("option", { value: n }, plural(n, "level"))));
    put(app, [el("h2", null, "Modules"),
      el("div", { class: "split" },
        el("div", null, el("div", { class: "controls" },
          search("module-search", "search name, path, description, signer", (e) => { q.text = e.target.value.toLowerCase(); mt.draw(); }), mt.count),
        el("div", { class: "scroll" }, mt.table)),
        el("div", { class: "panel" }, el("div", { class: "controls" }, el("strong", null, "Neighbourhood"), depthSel,
          el("span", { class: "legend" }, "left: what needs it · right: what it needs · hover an edge for its symbols · click a module to move")),
        detail, picture))]);
    mt.draw();

    function select(i) {
      selected = i;
      if (selectedRow) selectedRow.classList.remove("selected");
      selectedRow = mt.tbody.querySelector("tr[data-name=\"" + CSS.escape(M[i][col.name]) + "\"]");
      if (selectedRow) selectedRow.classList.add("selected");
      const m = M[i];
      detail.replaceChildren(kv([["module", m[col.name]], ["path", m[col.path]], ["description", m[col.description]],
        ["license", m[col.license]], ["signer", m[col.signer] === null ? "unsigned" : m[col.signer]],
        ...(m[col.error] ? [["error", m[col.error]]] : [])]));
      picture.replaceChildren(neighbourhood(i, depth));
    }

    function neighbourhood(focus, levels) {
      const MAXCOL = 30, W = 190, H = 26, GAP = 70, TOP = 24;
      const level = new Map([[focus, 0]]);
      for (const [dir, next] of [[1, (v) => D.deps[v]], [-1, (v) => users[v].map((u) => u[0])]]) {
        let frontier = [focus];
        for (let k = 1; k <= levels; k++) {
          const nx = [];
          for (const v of frontier) for (const w of next(v)) if (!level.has(w)) { level.set(w, dir * k); nx.push(w); }
          frontier = nx;
        }
      }
      const cols = new Map();
      for (const [v, l] of level) { if (!cols.has(l)) cols.set(l, []); cols.get(l).push(v); }
      const pos = new Map(), more = [];
      let rowsMax = 1;
      for (const [l, vs] of cols) {
        vs.sort((a, b) => M[a][col.name].localeCompare(M[b][col.name]));
        const keep = vs.length > MAXCOL ? vs.slice(0, MAXCOL - 1) : vs;
        keep.forEach((v, r) => pos.set(v, [l, r]));
        if (keep.length < vs.length) more.push([l, keep.length, vs.length - keep.length]);
        rowsMax = Math.max(rowsMax, keep.length + (keep.length < vs.length ? 1 : 0));
      }
      const minL = Math.min(...cols.keys()), maxL = Math.max(...cols.keys());
      const X = (l) => 10 + (l - minL) * (W + GAP), Y = (r) => TOP + r * (H + 8);
      const width = X(maxL) + W + 10, height = Y(rowsMax) + 10;
      const svg = sv("svg", { width, height, viewBox: "0 0 " + width + " " + height, id: "neighbourhood-svg", role: "img",
        "aria-label": "dependency neighbourhood of " + M[focus][col.name] });
      const defs = sv("defs", null);
      for (const c of ["", "cyclic"]) {
        defs.appendChild(sv("marker", { id: "arrow" + c, viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
          sv("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead " + c })));
      }
      svg.appendChild(defs);
      for (const l of cols.keys()) {
        const label = l === 0 ? "module" : l < 0 ? "needed by (" + -l + ")" : "needs (" + l + ")";
        svg.appendChild(sv("text", { x: X(l), y: 14, class: "colhead" }, label));
      }
      const edges = sv("g", null);
      svg.appendChild(edges);
      for (const [v] of pos) {
        D.deps[v].forEach((w, j) => {
          if (!pos.has(w)) return;
          const [lv, rv] = pos.get(v), [lw, rw] = pos.get(w);
          const cyc = inCycle.has(v) && inCycle.has(w);
          let x1 = X(lv) + W, y1 = Y(rv) + H / 2, x2 = X(lw), y2 = Y(rw) + H / 2, d;
          if (lw > lv) d = "M" + x1 + "," + y1 + " C" + (x1 + GAP / 2) + "," + y1 + " " + (x2 - GAP / 2) + "," + y2 + " " + x2 + "," + y2;
          else { // same column or backwards (a cycle): an arc below the boxes
            x1 = X(lv) + W / 2; y1 = Y(rv) + H; x2 = X(lw) + W / 2; y2 = Y(rw) + H;
            const dip = Math.max(y1, y2) + 18 + Math.abs(lv - lw) * 6;
            d = "M" + x1 + "," + y1 + " C" + x1 + "," + dip + " " + x2 + "," + dip + " " + x2 + "," + y2;
          }
          const syms = D.symbols[v][j];
          edges.appendChild(sv("path", { d, class: "edge" + (cyc ? " cyclic" : ""), "marker-end": "url(#arrow" + (cyc ? "cyclic" : "") + ")",
            "data-from": M[v][col.name], "data-to": M[w][col.name] },
          sv("title", null, M[v][col.name] + " needs " + M[w][col.name] + (syms ? ": " + syms.split(" ").join(", ") : ""))));
        });
      }
      for (const [v, [l, r]] of pos) {
        const name = M[v][col.name];
        const g = sv("g", { class: "node" + (v === focus ? " focus" : "") + (inCycle.has(v) ? " cyclic" : ""), "data-name": name,
          transform: "translate(" + X(l) + "," + Y(r) + ")", onclick: () => select(v) },
        sv("title", null, name + " — " + M[v][col.path]),
        sv("rect", { width: W, height: H, rx: 4 }),
        sv("text", { x: 8, y: 17 }, name.length > 24 ? name.slice(0, 23) + "…" : name));
        svg.appendChild(g);
      }
      for (const [l, r, n] of more) {
        svg.appendChild(sv("g", { class: "node more", transform: "translate(" + X(l) + "," + Y(r) + ")" },
          sv("rect", { width: W, height: H, rx: 4 }), sv("text", { x: 8, y: 17 }, "+" + n + " more")));
      }
      return svg;
    }

    // findings
    const F = D.findings, fq = { sev: "", kind: "", text: "" };
    const ft = dataTable({
      id: "finding-table", rows: F, limit: 3000,
      cols: [
        { label: "severity", key: (f) => ["error", "warning", "info"].indexOf(f.severity), num: false, render: (f) => sevCell(f.severity) },
        { label: "kind", key: (f) => f.kind },
        { label: "module", key: (f) => f.modules[0] || f.files[0] || "", cls: "mono",
          render: (f) => { const n = f.modules[0]; return n && index.has(n) ? el("a", { href: "#module=" + encodeURIComponent(n), onclick: (e) => { e.preventDefault(); select(index.get(n)); picture.scrollIntoView(); } }, n) : text(n || f.files[0] || ""); } },
        { label: "finding", key: (f) => f.message },
      ],
      filter: (f) => (!fq.sev || f.severity === fq.sev) && (!fq.kind || f.kind === fq.kind) &&
        (!fq.text || (f.message + " " + f.modules.join(" ") + " " + f.symbols.join(" ")).toLowerCase().includes(fq.text)),
    });
    put(app, [el("h2", null, "Findings (" + F.length + ")"),
      el("div", { class: "controls" },
        options("finding-severity", "severities", Object.keys(S.by_severity).filter((s) => S.by_severity[s]), (e) => { fq.sev = e.target.value; ft.draw(); }),
        options("finding-kind", "kinds", Object.keys(S.by_kind), (e) => { fq.kind = e.target.value; ft.draw(); }),
        search("finding-search", "search findings", (e) => { fq.text = e.target.value.toLowerCase(); ft.draw(); }), ft.count),
      el("div", { class: "scroll" }, ft.table)]);
    ft.draw();

    // cycles, each drawn as a cycle
    const cyc = el("div", { class: "cycles", id: "cycles" });
    D.cycles.slice(0, 60).forEach((c) => cyc.appendChild(el("div", { class: "panel" }, cycle(c))));
    put(app, [el("h2", null, "Dependency cycles (" + D.cycles.length + ")"),
      D.cycles.length ? cyc : el("p", null, "None: every module has a load order.")]);
    function cycle(members) {
      const n = members.length, R = Math.max(60, n * 24), S2 = 2 * R + 200;
      const at = new Map(members.map((v, k) => [v, [S2 / 2 + R * Math.cos(2 * Math.PI * k / n - Math.PI / 2), 40 + R + R * Math.sin(2 * Math.PI * k / n - Math.PI / 2)]]));
      const svg = sv("svg", { width: S2, height: 2 * R + 80, class: "cycle", role: "img", "aria-label": "cycle" },
        sv("defs", null, sv("marker", { id: "carrow" + members[0], viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" },
          sv("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead cyclic" }))));
      for (const v of members) D.deps[v].forEach((w, j) => {
        if (!at.has(w)) return;
        const [x1, y1] = at.get(v), [x2, y2] = at.get(w), dx = x2 - x1, dy = y2 - y1, L = Math.hypot(dx, dy) || 1;
        svg.appendChild(sv("line", { x1: x1 + dx / L * 10, y1: y1 + dy / L * 10, x2: x2 - dx / L * 12, y2: y2 - dy / L * 12, class: "edge cyclic",
          "marker-end": "url(#carrow" + members[0] + ")", "data-from": M[v][col.name], "data-to": M[w][col.name] },
        sv("title", null, M[v][col.name] + " needs " + M[w][col.name] + ": " + D.symbols[v][j].split(" ").join(", "))));
      });
      for (const v of members) {
        const [x, y] = at.get(v);
        svg.appendChild(sv("g", { class: "node cyclic", "data-name": M[v][col.name], onclick: () => { select(v); picture.scrollIntoView(); } },
          sv("circle", { cx: x, cy: y, r: 8, class: "arrowhead cyclic" }), sv("text", { x: x + 11, y: y - 8 }, M[v][col.name])));
      }
      return svg;
    }

    // the whole tree by subsystem folder (laid out by moddeps, drawn here)
    const O = D.overview, R0 = O.radius, PAD = 170;
    const osvg = sv("svg", { width: 2 * (R0 + PAD), height: 2 * (R0 + 40), viewBox: (-R0 - PAD) + " " + (-R0 - 40) + " " + 2 * (R0 + PAD) + " " + 2 * (R0 + 40), id: "overview", role: "img", "aria-label": "dependencies between subsystem folders" });
    const maxE = Math.max(1, ...O.edges.map((e) => e[2]));
    for (const [a, b, n] of O.edges) {
      if (a === b) continue;
      const A = O.nodes[a], B = O.nodes[b];
      osvg.appendChild(sv("path", { d: "M" + A.x + "," + A.y + " Q0,0 " + B.x + "," + B.y, class: "oedge", "stroke-width": (0.6 + 5 * Math.sqrt(n / maxE)).toFixed(2) },
        sv("title", null, A.name + " → " + B.name + ": " + plural(n, "dependency edge"))));
    }
    O.nodes.forEach((nd, k) => {
      const self = O.edges.find((e) => e[0] === k && e[1] === k);
      const right = nd.x >= 0;
      osvg.appendChild(sv("g", { class: "onode", "data-folder": nd.name, onclick: () => { const s = document.getElementById("module-search"); s.value = nd.name + "/"; q.text = s.value.toLowerCase(); mt.draw(); s.scrollIntoView(); } },
        sv("title", null, nd.name + ": " + plural(nd.modules, "module") + (self ? ", " + plural(self[2], "edge") + " inside" : "")),
        sv("circle", { cx: nd.x, cy: nd.y, r: (3 + 2.2 * Math.sqrt(nd.modules)).toFixed(1) }),
        sv("text", { x: nd.x + (right ? 1 : -1) * (8 + 2.2 * Math.sqrt(nd.modules)), y: nd.y + 4, "text-anchor": right ? "start" : "end" }, nd.name + " (" + nd.modules + ")")));
    });
    put(app, [el("h2", null, "Overview: dependencies between subsystem folders"),
      el("p", { class: "legend" }, "Each circle is a folder (its area: the modules in it); a line joins folders whose modules depend on each other, wider for more edges. Click a folder to list its modules."),
      el("div", { class: "graph panel" }, osvg)]);

    // what to show first: #module=NAME, else the module most others need
    const want = decodeURIComponent((location.hash.match(/^#module=(.*)$/) || [])[1] || "");
    let first = index.has(want) ? index.get(want) : -1;
    if (first < 0 && M.length) first = M.reduce((b, m, i) => (m[col.dependents] > M[b][col.dependents] ? i : b), 0);
    if (first >= 0) select(first);
    if (index.has(want)) picture.scrollIntoView();
  }

  // ------------------------------------------------------------------ diff
  function diff() {
    header();
    const ch = D.changes, dq = { kind: "", text: "", bad: false };
    const side = (s) => s.path + " (" + s.kind + (s.version ? " " + s.version : "") + ", " + plural(s.modules, "module") + ", " + plural(s.exports, "export") + (s.crcs ? "" : ", no CRCs") + ")";
    const nbad = ch.filter((c) => c.incompatible).length;
    put(app, [el("h2", null, "Summary"),
      el("div", { class: "cards", id: "summary" }, card(ch.length, "changes"), card(nbad, "incompatible", nbad ? "error" : "")),
      kv([["old", side(D.old)], ["new", side(D.new)], ["out-of-tree modules checked", D.checked.length ? D.checked.join(", ") : "none"]]),
      el("h3", null, "Changes by kind"), Object.keys(D.summary).length ? kv(Object.entries(D.summary)) : el("p", null, "No changes."),
      D.notes.length ? el("ul", { class: "muted" }, ...D.notes.map((n) => el("li", null, "note: " + n))) : null]);
    const list = (xs) => xs && xs.length ? xs.join(", ") : "";
    const kinds = [...new Set(ch.map((c) => c.kind))];
    const body = el("div", { id: "changes" });
    put(app, [el("h2", null, "ABI changes, incompatible first"),
      el("div", { class: "controls" }, options("change-kind", "kinds", kinds, (e) => { dq.kind = e.target.value; draw(); }),
        el("label", null, el("input", { type: "checkbox", id: "change-incompatible", onchange: (e) => { dq.bad = e.target.checked; draw(); } }), " incompatible only"),
        search("change-search", "search module or symbol", (e) => { dq.text = e.target.value.toLowerCase(); draw(); })), body]);
    function draw() {
      const groups = new Map();
      for (const c of ch) {
        if ((dq.kind && c.kind !== dq.kind) || (dq.bad && !c.incompatible)) continue;
        if (dq.text && !(c.module + " " + text(c.symbol) + " " + list(c.breaks)).toLowerCase().includes(dq.text)) continue;
        const k = (c.incompatible ? "incompatible " : "") + c.kind;
        if (!groups.has(k)) groups.set(k, []);
        groups.get(k).push(c);
      }
      body.replaceChildren(...[...groups].flatMap(([k, cs]) => [el("h3", null, k + " (" + cs.length + ")"),
        el("div", { class: "scroll" }, el("table", { class: "changes" },
          el("thead", null, el("tr", null, ...["module", "symbol", "old", "new", "breaks in-tree", "breaks out-of-tree"].map((h) => el("th", null, h)))),
          el("tbody", null, ...cs.slice(0, 3000).map((c) => el("tr", { class: c.incompatible ? "bad-row" : null },
            el("td", { class: "mono" }, c.module), el("td", { class: "mono" }, text(c.symbol)),
            el("td", { class: "mono" }, text(c.old === null ? "-" : c.old)), el("td", { class: "mono" }, text(c.new === null ? "-" : c.new) + (c.symbols ? " (" + c.symbols.join(", ") + ")" : "")),
            el("td", { class: "mono bad" }, list(c.breaks)), el("td", { class: "mono bad" }, list(c.breaks_out_of_tree)))))))]));
      if (!groups.size) body.replaceChildren(el("p", null, "No change matches."));
    }
    draw();
  }

  // ------------------------------------------------------------------ compat
  function compat() {
    header();
    put(app, [el("h2", null, "Kernels"), el("table", { id: "kernels" },
      el("thead", null, el("tr", null, ...["kernel", "tree", "kernel symbols", "loads", "in-tree modules broken", "notes"].map((h) => el("th", null, h)))),
      el("tbody", null, ...D.kernels.map((k) => el("tr", null, el("td", { class: "mono" }, k.kernel), el("td", { class: "mono" }, k.tree),
        el("td", { class: "mono" }, text(k.kernel_symbols || "unchecked")), el("td", { class: k.loads ? "good" : "bad" }, k.loads ? "yes" : "no"),
        el("td", { class: "mono" }, k.broken_in_tree.join(", ")), el("td", null, k.notes.join("; "))))))]);
    const vt = dataTable({
      id: "verdict-table", rows: D.verdicts, filter: () => true,
      cols: [
        { label: "file", key: (v) => v.file, cls: "mono" }, { label: "module", key: (v) => v.module, cls: "mono" },
        { label: "kernel", key: (v) => v.kernel, cls: "mono" },
        { label: "loads", key: (v) => v.loads ? "yes" : "no", render: (v) => el("span", { class: v.loads ? "good" : "bad" }, v.summary) },
        { label: "why not", key: (v) => v.reasons.join(", ") + (v.needs_failing.length ? " (needs " + v.needs_failing.join(", ") + ")" : "") },
        { label: "breaks", key: (v) => v.breaks.join(", "), cls: "mono" },
        { label: "signature", key: (v) => v.signature ? v.signature.status + (v.signature.signer ? ": " + v.signature.signer : "") : "-" },
        { label: "kernel log", key: (v) => v.kernel_log.join(" / "), cls: "mono" },
      ],
    });
    put(app, [el("h2", null, "Verdicts"), el("div", { class: "scroll" }, vt.table)]);
    vt.draw();
    const ft = dataTable({
      id: "finding-table", rows: D.findings, filter: () => true,
      cols: [{ label: "severity", key: (f) => f.severity, render: (f) => sevCell(f.severity) }, { label: "kind", key: (f) => f.kind },
        { label: "kernel", key: (f) => f.details.kernel, cls: "mono" }, { label: "module", key: (f) => f.modules[0] || "", cls: "mono" },
        { label: "finding", key: (f) => f.message }],
    });
    put(app, [el("h2", null, "Findings (" + D.findings.length + ")"), el("div", { class: "scroll" }, ft.table)]);
    ft.draw();
  }

  ({ audit, diff, compat })[D.kind]();
})();
