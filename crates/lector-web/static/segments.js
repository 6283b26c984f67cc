// The segment filter builder (读者分组条件编辑器). It edits a tree of `all` / `any` groups and
// conditions, writes the filter's JSON into the form's textarea (the form works without this
// script: the textarea alone is the filter), asks the server for the live member count a moment
// after each change, and shows the server's errors beside the condition they name
// (`all[1].any[0].value`).
(function () {
  'use strict';

  var del = document.getElementById('delete-form');
  if (del) {
    del.addEventListener('submit', function (e) {
      var en = document.documentElement.lang === 'en';
      if (!window.confirm(en ? 'Delete this segment?' : '确定删除这个读者分组吗？')) { e.preventDefault(); }
    });
  }

  var root = document.getElementById('builder');
  var form = document.getElementById('segment-form');
  var area = document.getElementById('filter-json');
  var countEl = document.getElementById('live-count');
  if (!root || !form || !area || !countEl) {
    return;
  }
  var lang = root.getAttribute('data-lang') === 'en' ? 'en' : 'zh';
  var fields = JSON.parse(root.getAttribute('data-fields') || '[]');
  var errors = JSON.parse(root.getAttribute('data-errors') || '[]');
  var csrf = form.querySelector('input[name=csrf]').value;
  var byCode = {};
  fields.forEach(function (f) { byCode[f.code] = f; });

  var UI = {
    all: ['全部满足（并且）', 'All of (AND)'],
    any: ['满足其一（或者）', 'Any of (OR)'],
    addCond: ['添加条件', 'Add condition'],
    addGroup: ['添加条件组', 'Add group'],
    remove: ['删除', 'Remove'],
    listHint: ['多个值用逗号分隔', 'separate values with commas'],
    days: ['天', 'days'],
    to: ['至', 'to'],
    cannotShow: ['这段 JSON 无法在编辑器中显示，请直接修改下方文本。', 'This JSON cannot be shown in the editor; edit the text below.']
  };
  function tr(key) { return UI[key][lang === 'en' ? 1 : 0]; }
  function label(msg) { return lang === 'en' ? msg.en : msg.zh; }

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') { e.textContent = attrs[k]; } else { e.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { e.appendChild(c); } });
    return e;
  }

  // ---- the model: {mode: 'all'|'any', children: [...]} or {field, op, value} ----

  function fromJson(v) {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      var keys = Object.keys(v);
      if (keys.length === 1 && (keys[0] === 'all' || keys[0] === 'any') && Array.isArray(v[keys[0]])) {
        return { mode: keys[0], children: v[keys[0]].map(fromJson) };
      }
      if (keys.every(function (k) { return k === 'field' || k === 'op' || k === 'value'; }) && typeof v.field === 'string') {
        return { field: v.field, op: typeof v.op === 'string' ? v.op : '', value: v.value };
      }
    }
    throw new Error('not a filter');
  }

  function toJson(n) {
    if (n.mode) {
      var g = {};
      g[n.mode] = n.children.map(toJson);
      return g;
    }
    var c = { field: n.field, op: n.op };
    if (needsValue(n.op) && n.value !== undefined) { c.value = n.value; }
    return c;
  }

  function needsValue(op) { return op !== 'is_empty' && op !== 'not_empty'; }
  function isList(op) { return op === 'in' || op === 'not_in'; }

  /// A sensible value for a condition whose field or operator just changed.
  function defaultValue(field, op, old) {
    var f = byCode[field];
    if (!f || !needsValue(op)) { return undefined; }
    if (f.kind === 'date') {
      if (op === 'within_last_days' || op === 'within_next_days') { return typeof old === 'number' ? old : 30; }
      if (op === 'between') { return Array.isArray(old) && old.length === 2 ? old : ['', '']; }
      return typeof old === 'string' ? old : '';
    }
    var first = f.options.length ? f.options[0].code : '';
    if (isList(op)) {
      if (Array.isArray(old)) { return old; }
      if (typeof old === 'string' && old !== '') { return [old]; }
      return f.kind === 'enum' ? [first] : [];
    }
    if (Array.isArray(old) && old.length) { return old[0]; }
    if (typeof old === 'string' && old !== '') { return old; }
    return f.kind === 'enum' ? first : '';
  }

  function newCondition() {
    var f = byCode.status || fields[0];
    return { field: f.code, op: f.ops[0].code, value: defaultValue(f.code, f.ops[0].code) };
  }

  var model = null;

  // ---- rendering ----

  function join(path, key) { return path ? path + '.' + key : key; }

  function render() {
    while (root.firstChild) { root.removeChild(root.firstChild); }
    if (!model) {
      root.appendChild(el('p', { class: 'hint', id: 'builder-unavailable', text: tr('cannotShow') }));
      return;
    }
    root.appendChild(renderGroup(model, '', null));
    showErrors();
  }

  function renderGroup(g, path, parent) {
    var errPath = join(path, g.mode);
    var mode = el('select', { class: 'group-mode', 'aria-label': tr('all') + ' / ' + tr('any') });
    ['all', 'any'].forEach(function (m) {
      var o = el('option', { value: m, text: tr(m) });
      if (m === g.mode) { o.selected = true; }
      mode.appendChild(o);
    });
    mode.addEventListener('change', function () { g.mode = mode.value; changed(true); });
    var list = el('ul', { class: 'seg-children' });
    g.children.forEach(function (child, i) {
      var childPath = errPath + '[' + i + ']';
      var item = child.mode ? renderGroup(child, childPath, g) : renderCondition(child, childPath, g);
      list.appendChild(el('li', {}, [item]));
    });
    var addCond = el('button', { type: 'button', class: 'add-cond', text: tr('addCond') });
    addCond.addEventListener('click', function () { g.children.push(newCondition()); changed(true); });
    var addGroup = el('button', { type: 'button', class: 'add-group', text: tr('addGroup') });
    addGroup.addEventListener('click', function () { g.children.push({ mode: 'any', children: [newCondition()] }); changed(true); });
    var actions = el('div', { class: 'seg-actions' }, [addCond, addGroup]);
    if (parent) { actions.appendChild(removeButton(parent, g)); }
    return el('div', { class: 'seg-group', 'data-path': path, 'data-errpath': errPath }, [
      el('div', { class: 'seg-head' }, [mode]),
      list,
      actions,
      el('span', { class: 'field-error seg-error', role: 'alert' })
    ]);
  }

  function removeButton(parent, node) {
    var b = el('button', { type: 'button', class: 'remove link', text: tr('remove') });
    b.addEventListener('click', function () {
      parent.children.splice(parent.children.indexOf(node), 1);
      changed(true);
    });
    return b;
  }

  function renderCondition(c, path, parent) {
    var f = byCode[c.field];
    var field = el('select', { class: 'cond-field', 'aria-label': lang === 'en' ? 'Field' : '字段' });
    if (!f) { field.appendChild(el('option', { value: c.field, text: c.field })); }
    fields.forEach(function (spec) {
      var o = el('option', { value: spec.code, text: label(spec.label) });
      if (spec.code === c.field) { o.selected = true; }
      field.appendChild(o);
    });
    field.addEventListener('change', function () {
      var spec = byCode[field.value];
      var keep = spec.ops.some(function (o) { return o.code === c.op; });
      var op = keep ? c.op : spec.ops[0].code;
      var kindChanged = !f || f.kind !== spec.kind || spec.kind === 'enum';
      c.field = spec.code;
      c.op = op;
      c.value = defaultValue(spec.code, op, kindChanged ? undefined : c.value);
      changed(true);
    });
    var op = el('select', { class: 'cond-op', 'aria-label': lang === 'en' ? 'Operator' : '比较方式' });
    var ops = f ? f.ops : [];
    if (!ops.some(function (o) { return o.code === c.op; })) { op.appendChild(el('option', { value: c.op, text: c.op })); }
    ops.forEach(function (spec) {
      var o = el('option', { value: spec.code, text: label(spec.label) });
      if (spec.code === c.op) { o.selected = true; }
      op.appendChild(o);
    });
    op.addEventListener('change', function () {
      c.value = defaultValue(c.field, op.value, c.value);
      c.op = op.value;
      changed(true);
    });
    return el('div', { class: 'seg-cond cond', 'data-path': path }, [
      field,
      op,
      f ? valueEditor(c, f) : null,
      parent ? removeButton(parent, c) : null,
      el('span', { class: 'field-error seg-error', role: 'alert' })
    ]);
  }

  /// The input(s) for a condition's value; typing updates the model without re-rendering, so
  /// the focus stays where it is.
  function valueEditor(c, f) {
    if (!needsValue(c.op)) { return null; }
    var typed = function (input, read) {
      input.addEventListener('input', function () { c.value = read(); changed(false); });
      input.addEventListener('change', function () { c.value = read(); changed(false); });
      return input;
    };
    if (f.kind === 'enum') {
      if (isList(c.op)) {
        var chosen = Array.isArray(c.value) ? c.value : [];
        var box = el('span', { class: 'cond-value cond-options' });
        var read = function () {
          return Array.prototype.filter.call(box.querySelectorAll('input'), function (i) { return i.checked; }).map(function (i) { return i.value; });
        };
        f.options.forEach(function (o) {
          var check = el('input', { type: 'checkbox', value: o.code, class: 'cond-option' });
          check.checked = chosen.indexOf(o.code) >= 0;
          typed(check, read);
          box.appendChild(el('label', {}, [check, document.createTextNode(label(o.label))]));
        });
        return box;
      }
      var select = el('select', { class: 'cond-value' });
      f.options.forEach(function (o) {
        var opt = el('option', { value: o.code, text: label(o.label) });
        if (o.code === c.value) { opt.selected = true; }
        select.appendChild(opt);
      });
      return typed(select, function () { return select.value; });
    }
    if (f.kind === 'date') {
      if (c.op === 'between') {
        var pair = Array.isArray(c.value) ? c.value : ['', ''];
        var from = el('input', { type: 'date', class: 'cond-value cond-value-from' });
        var to = el('input', { type: 'date', class: 'cond-value cond-value-to' });
        from.value = pair[0] || '';
        to.value = pair[1] || '';
        var both = function () { return [from.value, to.value]; };
        return el('span', {}, [typed(from, both), document.createTextNode(' ' + tr('to') + ' '), typed(to, both)]);
      }
      if (c.op === 'within_last_days' || c.op === 'within_next_days') {
        var days = el('input', { type: 'number', min: '1', step: '1', class: 'cond-value narrow' });
        days.value = c.value === undefined ? '' : String(c.value);
        var n = function () { var v = parseInt(days.value, 10); return isNaN(v) ? days.value : v; };
        return el('span', {}, [typed(days, n), document.createTextNode(' ' + tr('days'))]);
      }
      var date = el('input', { type: 'date', class: 'cond-value' });
      date.value = typeof c.value === 'string' ? c.value : '';
      return typed(date, function () { return date.value; });
    }
    var text = el('input', { type: 'text', class: 'cond-value' });
    if (isList(c.op)) {
      text.value = Array.isArray(c.value) ? c.value.join(', ') : '';
      text.setAttribute('placeholder', tr('listHint'));
      return typed(text, function () {
        return text.value.split(/[,，、;；\n]/).map(function (s) { return s.trim(); }).filter(function (s) { return s !== ''; });
      });
    }
    text.value = typeof c.value === 'string' ? c.value : '';
    return typed(text, function () { return text.value; });
  }

  // ---- errors ----

  function under(field, path) {
    return field === path || field.indexOf(path + '.') === 0 || field.indexOf(path + '[') === 0;
  }

  /// Puts each error beside the deepest condition or group its path falls under; what falls
  /// under none (`filter`) goes above the builder's JSON.
  function showErrors() {
    var targets = Array.prototype.slice.call(root.querySelectorAll('.seg-cond[data-path], .seg-group[data-errpath]'));
    targets.forEach(function (t) { t.querySelector(':scope > .seg-error').textContent = ''; });
    var top = document.getElementById('filter-top-errors');
    while (top.firstChild) { top.removeChild(top.firstChild); }
    var rest = el('ul', { id: 'filter-errors', class: 'error' });
    errors.forEach(function (e) {
      var best = null;
      var bestLen = -1;
      targets.forEach(function (t) {
        var p = t.classList.contains('seg-cond') ? t.getAttribute('data-path') : t.getAttribute('data-errpath');
        if (under(e.field, p) && p.length > bestLen) { best = t; bestLen = p.length; }
      });
      if (best) {
        var span = best.querySelector(':scope > .seg-error');
        span.textContent = (span.textContent ? span.textContent + '；' : '') + e.message;
        span.setAttribute('data-field', e.field);
      } else {
        rest.appendChild(el('li', { class: 'field-error', 'data-field': e.field, text: e.message }));
      }
    });
    if (rest.firstChild) { top.appendChild(rest); }
  }

  // ---- the live count ----

  var timer = null;
  var asked = 0;

  function countSoon() {
    if (timer) { clearTimeout(timer); }
    countEl.setAttribute('data-state', 'pending');
    timer = setTimeout(count, 300);
  }

  function count() {
    var mine = ++asked;
    var body = new URLSearchParams();
    body.set('csrf', csrf);
    body.set('filter', area.value);
    fetch('/segments/count', { method: 'POST', credentials: 'same-origin', headers: { Accept: 'application/json' }, body: body })
      .then(function (r) { return r.json().then(function (data) { return { ok: r.ok, data: data }; }); })
      .then(function (res) {
        if (mine !== asked) { return; }
        if (res.ok) {
          countEl.textContent = String(res.data.count);
          countEl.setAttribute('data-state', 'ok');
          errors = [];
        } else {
          countEl.textContent = '—';
          countEl.setAttribute('data-state', 'error');
          errors = res.data.errors || [];
        }
        showErrors();
      })
      .catch(function () {
        if (mine !== asked) { return; }
        countEl.textContent = '?';
        countEl.setAttribute('data-state', 'error');
      });
  }

  /// After any edit in the builder: write the JSON, re-render when the structure changed, and
  /// ask for a new count.
  function changed(structure) {
    area.value = JSON.stringify(toJson(model), null, 2);
    if (structure) { render(); }
    countSoon();
  }

  function load() {
    try {
      var parsed = fromJson(JSON.parse(area.value));
      model = parsed.mode ? parsed : { mode: 'all', children: [parsed] };
    } catch (e) {
      model = null;
    }
  }

  area.addEventListener('input', function () {
    load();
    render();
    countSoon();
  });

  load();
  render();
  if (model) {
    var box = document.getElementById('filter-json-box');
    if (box) { box.open = false; }
  }
})();
