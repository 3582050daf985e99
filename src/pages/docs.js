// Interactive API page served at "/docs".
//
// Fetches /openapi.json and renders every operation with a "Try it" form
// that calls this same origin. Everything that comes from the document or
// from a response reaches the page through textContent and DOM nodes, never
// as HTML, so neither a description nor a response body can inject markup.
// The login box keeps the token in memory only (it is gone on reload); the
// HttpOnly cookie set by POST /token authenticates the page meanwhile. Before
// the token expires the page refreshes it (POST /token/refresh), so it stays
// logged in while it is open, up to the session's absolute limit.
'use strict';

(() => {
  const METHODS = ['get', 'put', 'post', 'patch', 'delete'];
  const TEXT_LIMIT = 200000;
  const REASONS = {
    101: 'Switching Protocols', 200: 'OK', 201: 'Created', 204: 'No Content', 206: 'Partial Content',
    304: 'Not Modified', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
    405: 'Method Not Allowed', 408: 'Request Timeout', 409: 'Conflict', 411: 'Length Required',
    413: 'Content Too Large', 414: 'URI Too Long', 415: 'Unsupported Media Type',
    416: 'Range Not Satisfiable', 422: 'Unprocessable Content', 426: 'Upgrade Required', 429: 'Too Many Requests',
    431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 503: 'Service Unavailable',
    507: 'Insufficient Storage',
  };

  const auth = { token: null, refreshTimer: 0 };
  // A refresh that fails for want of a network is tried again this soon.
  const REFRESH_RETRY_MS = 5000;
  let spec = null;
  // The {id} fields of the file operations, filled in after an upload so
  // that downloading or deleting the new file is one click away.
  const fileIdInputs = [];

  // ---- DOM helpers ----

  // Creates an element. `props` are set as properties when the element has
  // them (className, htmlFor, value, ...) and as attributes otherwise
  // (aria-*, data-*); children are nodes or strings (added as text).
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    Object.entries(props || {}).forEach(([key, value]) => {
      if (value === undefined || value === null || value === false) return;
      if (key in node) node[key] = value;
      else node.setAttribute(key, value === true ? '' : String(value));
    });
    children.flat(Infinity).forEach((child) => {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    });
    return node;
  }

  // Inline markup of descriptions: `code`, **strong** and *emphasis*.
  function inline(text) {
    const out = [];
    const pattern = /`([^`]+)`|\*\*([^*]+)\*\*|\*([^*]+)\*/g;
    let last = 0;
    for (let m = pattern.exec(text); m; m = pattern.exec(text)) {
      out.push(text.slice(last, m.index));
      if (m[1] !== undefined) out.push(h('code', {}, m[1]));
      else if (m[2] !== undefined) out.push(h('strong', {}, m[2]));
      else out.push(h('em', {}, m[3]));
      last = pattern.lastIndex;
    }
    out.push(text.slice(last));
    return out;
  }

  function splitRow(line) {
    return line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((cell) => cell.trim());
  }

  // The subset of CommonMark the descriptions use: headings, paragraphs,
  // "- " lists and pipe tables.
  function markdown(text) {
    const fragment = document.createDocumentFragment();
    (text || '').split(/\n\s*\n/).forEach((block) => {
      const lines = block.split('\n').filter((line) => line.trim() !== '');
      if (!lines.length) return;
      const heading = /^#{1,6}\s+(.*)$/.exec(lines[0]);
      if (heading && lines.length === 1) {
        fragment.append(h('h4', {}, inline(heading[1])));
      } else if (lines.every((line) => line.trim().startsWith('|'))) {
        const rows = lines.filter((line) => !/^\s*\|?\s*:?-{2,}/.test(line)).map(splitRow);
        const [head, ...body] = rows;
        fragment.append(h('table', {},
          h('thead', {}, h('tr', {}, head.map((cell) => h('th', { scope: 'col' }, inline(cell))))),
          h('tbody', {}, body.map((row) => h('tr', {}, row.map((cell) => h('td', {}, inline(cell))))))));
      } else if (/^\s*- /.test(lines[0])) {
        const list = h('ul');
        let item = null;
        lines.forEach((line) => {
          const start = /^\s*- (.*)$/.exec(line);
          if (start || !item) {
            item = h('li', {}, inline(start ? start[1] : line));
            list.append(item);
          } else {
            item.append(' ', ...inline(line.trim()));
          }
        });
        fragment.append(list);
      } else {
        fragment.append(h('p', {}, inline(lines.join(' '))));
      }
    });
    return fragment;
  }

  // ---- reading the document ----

  function resolve(value) {
    let node = value;
    for (let hops = 0; node && node.$ref && hops < 20; hops += 1) {
      const ref = node.$ref;
      if (!ref.startsWith('#/')) return {};
      node = ref.slice(2).split('/')
        .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
        .reduce((at, part) => (at ? at[part] : undefined), spec);
    }
    return node || {};
  }

  function refName(value) {
    return value && value.$ref ? value.$ref.split('/').pop() : null;
  }

  function firstLine(text) {
    return (text || '').split('\n')[0].replace(/`/g, '').replace(/\.$/, '');
  }

  function constraints(schema) {
    const notes = [];
    if (schema.minimum !== undefined && schema.maximum !== undefined) notes.push(schema.minimum + ' to ' + schema.maximum);
    else if (schema.minimum !== undefined) notes.push('>= ' + schema.minimum);
    else if (schema.maximum !== undefined) notes.push('<= ' + schema.maximum);
    if (schema.minLength !== undefined || schema.maxLength !== undefined) {
      notes.push('length ' + (schema.minLength || 0) + (schema.maxLength !== undefined ? ' to ' + schema.maxLength : '+'));
    }
    if (schema.pattern) notes.push('pattern ' + schema.pattern);
    if (schema.default !== undefined) notes.push('default ' + JSON.stringify(schema.default));
    return notes;
  }

  // A compact, TypeScript-like picture of a schema, for people to read;
  // `brief` leaves out the notes and keeps it on one line.
  function sketch(value, depth, seen, brief) {
    const name = refName(value);
    if (name && (seen.has(name) || depth > 4)) return name;
    const schema = resolve(value);
    const inner = name ? new Set(seen).add(name) : seen;
    if (schema.const !== undefined) return JSON.stringify(schema.const);
    if (Array.isArray(schema.enum)) return schema.enum.map((v) => JSON.stringify(v)).join(' | ');
    let types = schema.type;
    if (!types) types = schema.properties ? 'object' : schema.items ? 'array' : 'any';
    return [].concat(types).map((type) => {
      if (type === 'object') {
        const required = new Set(schema.required || []);
        const pad = '  '.repeat(depth + 1);
        const lines = Object.entries(schema.properties || {}).map(([key, prop]) => {
          const resolved = resolve(prop);
          const notes = constraints(resolved);
          if (resolved.description) notes.unshift(firstLine(resolved.description));
          const field = key + (required.has(key) ? '' : '?') + ': ' + sketch(prop, depth + 1, inner, brief);
          if (brief) return field;
          return pad + field + (notes.length ? '  // ' + notes.join('; ') : '');
        });
        if (!lines.length) return 'object';
        if (brief) return '{ ' + lines.join(', ') + ' }';
        return '{\n' + lines.join('\n') + '\n' + '  '.repeat(depth) + '}';
      }
      if (type === 'array') return sketch(schema.items, depth, inner, brief) + '[]';
      if (type === 'string' && schema.format) return 'string (' + schema.format + ')';
      return type;
    }).join(' | ');
  }

  // A value that fits the schema, preferring the document's own examples.
  function exampleOf(value, depth) {
    const schema = resolve(value);
    if (depth > 6) return null;
    if (Array.isArray(schema.examples) && schema.examples.length) return schema.examples[0];
    if (schema.example !== undefined) return schema.example;
    if (schema.default !== undefined) return schema.default;
    if (schema.const !== undefined) return schema.const;
    if (Array.isArray(schema.enum)) return schema.enum[0];
    const type = [].concat(schema.type || (schema.properties ? 'object' : 'string'))[0];
    switch (type) {
      case 'object': {
        const out = {};
        Object.entries(schema.properties || {}).forEach(([key, prop]) => { out[key] = exampleOf(prop, depth + 1); });
        return out;
      }
      case 'array': return [exampleOf(schema.items, depth + 1)];
      case 'integer':
      case 'number': return schema.minimum !== undefined ? schema.minimum : 0;
      case 'boolean': return true;
      case 'null': return null;
      default: return schema.format === 'date-time' ? new Date().toISOString() : 'string';
    }
  }

  function mediaExample(media) {
    if (media.example !== undefined) return media.example;
    const named = Object.values(media.examples || {})[0];
    if (named && resolve(named).value !== undefined) return resolve(named).value;
    return exampleOf(media.schema, 0);
  }

  function isSecured(op) {
    return (op.security || spec.security || []).some((req) => Object.keys(req).length > 0);
  }

  // Path-level parameters apply unless the operation redefines them.
  function parametersOf(pathItem, op) {
    const byKey = new Map();
    [...(pathItem.parameters || []), ...(op.parameters || [])].forEach((raw) => {
      const param = resolve(raw);
      byKey.set(param.in + ':' + param.name, param);
    });
    return [...byKey.values()];
  }

  // ---- authentication ----

  function authHeaders(op) {
    return auth.token && isSecured(op) ? { Authorization: 'Bearer ' + auth.token } : {};
  }

  async function refreshAuthState() {
    const stateLine = document.getElementById('auth-state');
    const headers = auth.token ? { Authorization: 'Bearer ' + auth.token } : {};
    let me = null;
    try {
      const response = await fetch('/me', { credentials: 'same-origin', headers });
      if (response.ok) me = await response.json();
    } catch (err) {
      me = null;
    }
    document.getElementById('docs-logout').hidden = !me;
    // Logged in by the cookie alone, its expiry is unknown: a refresh says it.
    if (me && !auth.refreshTimer) refreshSession();
    if (me && typeof me.username === 'string') {
      stateLine.textContent = 'Logged in as ' + me.username + (auth.token ? ' (cookie and bearer token).' : ' (cookie).');
      stateLine.className = 'auth-state ok';
    } else {
      stateLine.textContent = 'Not logged in. Operations marked "auth" will answer 401.';
      stateLine.className = 'auth-state';
    }
  }

  // Called after any successful POST /token or /token/refresh, from the
  // login box, a Try it form or the page's own refresh.
  function rememberToken(body) {
    if (body && typeof body.access_token === 'string') {
      auth.token = body.access_token;
      keepFresh(body.expires_in);
      refreshAuthState();
    }
  }

  function forgetToken() {
    auth.token = null;
    clearTimeout(auth.refreshTimer);
    auth.refreshTimer = 0;
    refreshAuthState();
  }

  // Refreshes halfway through the token's life, so a late timer still
  // finds it valid.
  function keepFresh(expiresIn) {
    clearTimeout(auth.refreshTimer);
    auth.refreshTimer = setTimeout(refreshSession, Math.max(1000, (Number(expiresIn) || 0) * 500));
  }

  async function refreshSession() {
    clearTimeout(auth.refreshTimer);
    auth.refreshTimer = setTimeout(refreshSession, REFRESH_RETRY_MS);
    const headers = auth.token ? { Authorization: 'Bearer ' + auth.token } : {};
    try {
      const response = await fetch('/token/refresh', { method: 'POST', credentials: 'same-origin', headers });
      const body = await response.json().catch(() => null);
      if (response.ok && body) {
        if (auth.token) auth.token = body.access_token;
        keepFresh(body.expires_in);
      } else if (response.status === 401) {
        forgetToken();
      }
    } catch (err) {
      // Tried again by the timer set above.
    }
  }

  async function onLogin(event) {
    event.preventDefault();
    const stateLine = document.getElementById('auth-state');
    const form = new URLSearchParams({
      username: document.getElementById('docs-username').value.trim(),
      password: document.getElementById('docs-password').value,
    });
    try {
      const response = await fetch('/token', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
      });
      const body = await response.json().catch(() => null);
      if (response.ok) {
        document.getElementById('docs-password').value = '';
        rememberToken(body);
        return;
      }
      stateLine.textContent = 'Login failed (' + response.status + '): ' + (body && body.detail ? body.detail : response.statusText);
    } catch (err) {
      stateLine.textContent = 'Login failed: the server cannot be reached.';
    }
    stateLine.className = 'auth-state form-error';
  }

  async function onLogout() {
    try {
      await fetch('/logout', { method: 'POST', credentials: 'same-origin' });
    } catch (err) {
      // The token is forgotten below either way.
    }
    forgetToken();
  }

  // ---- rendering the document ----

  function renderParameters(params) {
    if (!params.length) return null;
    return [
      h('h3', {}, 'Parameters'),
      h('table', { className: 'grid' },
        h('thead', {}, h('tr', {}, ['Name', 'In', 'Type', 'Description'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, params.map((param) => {
          const schema = resolve(param.schema);
          const notes = constraints(schema);
          return h('tr', {},
            h('td', {}, h('code', {}, param.name), param.required ? ' (required)' : ''),
            h('td', {}, param.in),
            h('td', {}, sketch(param.schema, 0, new Set(), true), notes.length ? h('div', { className: 'muted' }, notes.join('; ')) : null),
            h('td', { className: 'md' }, markdown(param.description)));
        }))),
    ];
  }

  function renderContent(content, brief) {
    return Object.entries(content || {}).map(([type, media]) => {
      if (!media.schema) return h('p', {}, h('code', {}, type));
      if (brief) return h('p', {}, h('code', {}, type), ' ', h('code', {}, sketch(media.schema, 0, new Set(), true)));
      return h('div', {}, h('p', {}, h('code', {}, type)), h('pre', {}, sketch(media.schema, 0, new Set())));
    });
  }

  function renderResponses(responses) {
    const rows = Object.entries(responses || {}).map(([code, raw]) => {
      const response = resolve(raw);
      const headers = Object.entries(response.headers || {}).map(([name, header]) => h('li', {},
        h('code', {}, name), resolve(header).description ? ': ' : '', inline(firstLine(resolve(header).description || ''))));
      return h('tr', {},
        h('td', {}, h('strong', {}, code)),
        h('td', { className: 'md' },
          markdown(response.description),
          headers.length ? h('div', {}, 'Headers:', h('ul', {}, headers)) : null,
          renderContent(response.content, !code.startsWith('2'))));
    });
    return [
      h('h3', {}, 'Responses'),
      h('table', { className: 'grid' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Code'), h('th', { scope: 'col' }, 'Meaning'))),
        h('tbody', {}, rows)),
    ];
  }

  function renderOperation(path, method, op, pathItem) {
    const id = op.operationId || (method + path).replace(/[^A-Za-z0-9]+/g, '-');
    const params = parametersOf(pathItem, op);
    const body = resolve(op.requestBody);
    const details = h('details', { className: 'op ' + method, id: 'op-' + id },
      h('summary', {},
        h('span', { className: 'op-method' }, method),
        h('span', { className: 'op-path' }, path),
        h('span', { className: 'op-summary' }, op.summary || ''),
        isSecured(op) ? h('span', { className: 'op-lock', title: 'Needs a token (bearer header or cookie)' }, 'auth') : null));
    const content = h('div', { className: 'op-body' },
      op.description ? h('div', { className: 'md' }, markdown(op.description)) : null,
      renderParameters(params),
      body.content ? [h('h3', {}, 'Request body' + (body.required ? ' (required)' : '')), renderContent(body.content)] : null,
      op['x-websocket'] ? renderSocketConsole(id, path, params) : renderTryIt(id, path, method, op, params, body),
      renderResponses(op.responses));
    details.append(content);
    return details;
  }

  function render() {
    const info = spec.info || {};
    document.title = (info.title || 'API') + ' - API documentation';
    document.getElementById('api-title').append(info.title || 'API', h('span', { className: 'version' }, 'version ' + (info.version || '?') + ' · OpenAPI ' + spec.openapi));
    document.getElementById('api-description').append(markdown(info.description));
    document.getElementById('intro').hidden = false;

    const groups = new Map((spec.tags || []).map((tag) => [tag.name, { tag, ops: [] }]));
    Object.entries(spec.paths || {}).forEach(([path, pathItem]) => {
      METHODS.forEach((method) => {
        const op = pathItem[method];
        if (!op) return;
        const name = (op.tags && op.tags[0]) || 'default';
        if (!groups.has(name)) groups.set(name, { tag: { name }, ops: [] });
        groups.get(name).ops.push(renderOperation(path, method, op, pathItem));
      });
    });

    const toc = document.getElementById('toc');
    const operations = document.getElementById('operations');
    groups.forEach(({ tag, ops }) => {
      if (!ops.length) return;
      const sectionId = 'tag-' + tag.name.replace(/[^A-Za-z0-9]+/g, '-');
      toc.append(h('a', { href: '#' + sectionId }, tag.name));
      operations.append(h('section', { id: sectionId, 'aria-labelledby': sectionId + '-title' },
        h('h2', { id: sectionId + '-title' }, tag.name),
        tag.description ? h('div', { className: 'md' }, markdown(tag.description)) : null,
        ops));
    });
    openFromHash();
  }

  function openFromHash() {
    const target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target && target.tagName === 'DETAILS') {
      target.open = true;
      target.scrollIntoView();
    }
  }

  // ---- Try it ----

  function fieldFor(formId, param) {
    const schema = resolve(param.schema);
    const inputId = formId + '-' + param.in + '-' + param.name;
    let input;
    if (Array.isArray(schema.enum)) {
      input = h('select', { id: inputId },
        param.required ? null : h('option', { value: '' }, '(not set)'),
        schema.enum.map((v) => h('option', { value: String(v) }, String(v))));
      if (param.example !== undefined) input.value = String(param.example);
    } else {
      input = h('input', {
        id: inputId,
        type: schema.type === 'integer' || schema.type === 'number' ? 'number' : 'text',
        placeholder: schema.default !== undefined ? 'default ' + schema.default : '',
        required: Boolean(param.required),
        autocomplete: 'off',
      });
      if (schema.minimum !== undefined) input.min = String(schema.minimum);
      if (schema.maximum !== undefined) input.max = String(schema.maximum);
      if (param.example !== undefined) input.value = String(param.example);
    }
    if (param.in === 'path' && param.name === 'id') fileIdInputs.push(input);
    const label = h('label', { htmlFor: inputId }, param.name, h('span', { className: 'muted' }, ' (' + param.in + (param.required ? ', required' : '') + ')'));
    return { param, input, nodes: [label, input] };
  }

  // Builds the body editor for the first media type of the request body;
  // read() turns the filled form into something fetch() can send.
  function bodyEditor(formId, body) {
    const entry = Object.entries(body.content || {})[0];
    if (!entry) return null;
    const [type, media] = entry;
    const schema = resolve(media.schema);
    const example = mediaExample(media) || {};
    if (type === 'application/json') {
      const inputId = formId + '-body';
      const area = h('textarea', { id: inputId, className: 'json', rows: 6 });
      area.spellcheck = false;
      area.value = JSON.stringify(example, null, 2);
      return {
        nodes: [h('label', { htmlFor: inputId }, 'Request body (' + type + ')'), area],
        read: () => ({ body: area.value, type }),
      };
    }
    const fields = Object.entries(schema.properties || {}).map(([name, prop]) => {
      const propSchema = resolve(prop);
      const inputId = formId + '-field-' + name;
      const isFile = propSchema.format === 'binary' || propSchema.contentMediaType !== undefined;
      const input = h('input', {
        id: inputId,
        type: isFile ? 'file' : propSchema.format === 'password' ? 'password' : 'text',
        autocomplete: 'off',
      });
      if (!isFile && typeof example[name] === 'string') input.value = example[name];
      const required = (schema.required || []).includes(name);
      return {
        name,
        input,
        isFile,
        nodes: [h('label', { htmlFor: inputId }, name, h('span', { className: 'muted' }, ' (' + (isFile ? 'file' : 'form field') + (required ? ', required' : '') + ')')), input],
      };
    });
    const multipart = type === 'multipart/form-data';
    return {
      nodes: [h('p', { className: 'muted' }, 'Body: ' + type), fields.map((f) => f.nodes)],
      // For multipart the browser sets Content-Type itself, boundary included.
      read: () => {
        if (multipart) {
          const data = new FormData();
          fields.forEach((f) => {
            if (f.isFile) {
              if (f.input.files[0]) data.append(f.name, f.input.files[0], f.input.files[0].name);
            } else if (f.input.value !== '') {
              data.append(f.name, f.input.value);
            }
          });
          return { body: data, type: null };
        }
        const data = new URLSearchParams();
        fields.forEach((f) => { if (!f.isFile) data.append(f.name, f.input.value); });
        return { body: data.toString(), type };
      },
    };
  }

  function renderTryIt(formId, path, method, op, params, body) {
    const fields = params.map((param) => fieldFor(formId, param));
    const editor = bodyEditor(formId, body);
    const output = h('div', { className: 'response', 'aria-live': 'polite' });
    const send = h('button', { type: 'submit' }, 'Send ' + method.toUpperCase() + ' ' + path);
    const form = h('form', { className: 'try', noValidate: true },
      h('h3', {}, 'Try it'),
      fields.map((f) => f.nodes),
      editor ? editor.nodes : null,
      h('div', { className: 'actions' }, send),
      output);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const missing = fields.find((f) => f.param.in === 'path' && f.input.value === '');
      if (missing) {
        output.replaceChildren(h('p', { className: 'form-error' }, 'Fill in the path parameter "' + missing.param.name + '".'));
        missing.input.focus();
        return;
      }
      let url = path.replace(/\{([^}]+)\}/g, (whole, name) => {
        const field = fields.find((f) => f.param.in === 'path' && f.param.name === name);
        return encodeURIComponent(field ? field.input.value : '');
      });
      const query = new URLSearchParams();
      const headers = authHeaders(op);
      fields.forEach((f) => {
        if (f.input.value === '') return;
        if (f.param.in === 'query') query.append(f.param.name, f.input.value);
        if (f.param.in === 'header') headers[f.param.name] = f.input.value;
      });
      if ([...query.keys()].length) url += '?' + query.toString();
      const init = { method: method.toUpperCase(), credentials: 'same-origin', headers };
      if (editor) {
        const { body: payload, type } = editor.read();
        init.body = payload;
        if (type) headers['Content-Type'] = type;
      }
      send.disabled = true;
      output.replaceChildren(h('p', { className: 'muted' }, 'Sending ' + init.method + ' ' + url + '…'));
      const started = performance.now();
      try {
        const response = await fetch(url, init);
        await showResponse(output, init.method, url, response, performance.now() - started);
      } catch (err) {
        output.replaceChildren(h('p', { className: 'status-line bad' }, 'No response: ' + err.message));
      } finally {
        send.disabled = false;
      }
    });
    return form;
  }

  function isJson(contentType) {
    return /[/+]json\b/.test(contentType);
  }

  function isText(contentType) {
    return /^text\/|javascript|xml/.test(contentType) || isJson(contentType);
  }

  // Only same-origin paths become links.
  function safePath(value) {
    return typeof value === 'string' && value.startsWith('/') && !value.startsWith('//') ? value : null;
  }

  async function showResponse(output, method, url, response, elapsed) {
    const contentType = response.headers.get('Content-Type') || '';
    const statusText = response.statusText || REASONS[response.status] || '';
    const lines = [];
    response.headers.forEach((value, name) => lines.push(name + ': ' + value));
    const parts = [
      h('p', {}, h('code', {}, method + ' ' + url)),
      h('p', { className: 'status-line ' + (response.ok || response.status === 304 ? 'ok' : 'bad') },
        response.status + ' ' + statusText, h('span', { className: 'muted' }, ' · ' + Math.round(elapsed) + ' ms')),
      h('h4', {}, 'Headers'),
      h('pre', {}, lines.join('\n')),
    ];
    const noBody = method === 'HEAD' || response.status === 204 || response.status === 304;
    if (noBody) {
      parts.push(h('p', { className: 'muted' }, 'No body.'));
    } else if (isText(contentType)) {
      let text = await response.text();
      let data = null;
      if (isJson(contentType)) {
        try {
          data = JSON.parse(text);
          text = JSON.stringify(data, null, 2);
        } catch (err) {
          data = null;
        }
      }
      if (data && safePath(data.download_url)) {
        fileIdInputs.forEach((input) => { input.value = data.id; });
        parts.push(h('p', { className: 'download' }, 'Download: ',
          h('a', { href: safePath(data.download_url) }, data.filename || data.download_url)));
      }
      if (Array.isArray(data)) {
        const links = data.filter((item) => item && safePath(item.download_url));
        if (links.length) {
          parts.push(h('ul', { className: 'download' }, links.map((item) => h('li', {},
            h('a', { href: safePath(item.download_url) }, item.filename || item.download_url)))));
        }
      }
      if (method === 'POST' && (url === '/token' || url === '/token/refresh') && response.ok) rememberToken(data);
      const shown = text.length > TEXT_LIMIT ? text.slice(0, TEXT_LIMIT) + '\n… (' + (text.length - TEXT_LIMIT) + ' more characters)' : text;
      parts.push(h('h4', {}, 'Body'), h('pre', {}, shown));
    } else {
      // A download may be large: do not read it into the page.
      if (response.body) response.body.cancel();
      const length = response.headers.get('Content-Length');
      parts.push(h('h4', {}, 'Body'),
        h('p', {}, (length ? length + ' bytes' : 'A body') + ' of ' + (contentType || 'unknown type') + ' (not shown). ',
          method === 'GET' ? h('a', { href: url }, 'Download it') : null));
    }
    if (method === 'POST' && (url === '/logout' || url === '/logout/all') && response.ok) forgetToken();
    output.replaceChildren(...parts);
  }

  // The WebSocket operation cannot be called with fetch(): open a socket.
  function renderSocketConsole(formId, path, params) {
    const tokenParam = params.find((p) => p.in === 'query' && p.name === 'token');
    const token = tokenParam ? fieldFor(formId, tokenParam) : null;
    // The other query parameters (resume with after_id and epoch, or last).
    const extras = params.filter((p) => p.in === 'query' && p !== tokenParam).map((p) => fieldFor(formId, p));
    const log = h('pre', { className: 'ws-log', role: 'log', 'aria-live': 'polite', 'aria-label': 'WebSocket events' });
    const connectButton = h('button', { type: 'button' }, 'Connect');
    const closeButton = h('button', { type: 'button', className: 'secondary', disabled: true }, 'Disconnect');
    const messageId = formId + '-message';
    const message = h('input', { id: messageId, type: 'text', autocomplete: 'off' });
    const sendButton = h('button', { type: 'submit', disabled: true }, 'Send');
    const composer = h('form', { className: 'composer' },
      h('label', { htmlFor: messageId, className: 'sr-only' }, 'Message to send'), message, sendButton);
    let socket = null;

    function write(line) {
      log.append(new Date().toLocaleTimeString() + '  ' + line + '\n');
      log.scrollTop = log.scrollHeight;
    }

    function setOpen(open) {
      connectButton.disabled = open;
      closeButton.disabled = !open;
      sendButton.disabled = !open;
    }

    connectButton.addEventListener('click', () => {
      const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
      let url = scheme + '//' + location.host + path;
      const value = token ? token.input.value.trim() : '';
      const shown = extras.filter((f) => f.input.value.trim())
        .map((f) => f.param.name + '=' + encodeURIComponent(f.input.value.trim()));
      const query = (value ? ['token=' + encodeURIComponent(value)] : []).concat(shown);
      if (query.length) url += '?' + query.join('&');
      write('connecting to ' + path + (shown.length ? '?' + shown.join('&') : '') +
        (value ? ' with ?token=' : ' with the cookie'));
      const ws = new WebSocket(url);
      socket = ws;
      setOpen(true);
      ws.addEventListener('open', () => write('open'));
      ws.addEventListener('message', (event) => write('<- ' + event.data));
      ws.addEventListener('close', (event) => {
        write('closed: code ' + event.code + (event.reason ? ' (' + event.reason + ')' : '') +
          (event.code === 1006 ? ' - no close frame; a refused handshake (401 or 403) looks like this: are you logged in?' : ''));
        if (socket === ws) {
          socket = null;
          setOpen(false);
        }
      });
    });
    closeButton.addEventListener('click', () => {
      if (socket) socket.close(1000);
    });
    composer.addEventListener('submit', (event) => {
      event.preventDefault();
      if (!socket || socket.readyState !== WebSocket.OPEN) return;
      socket.send(message.value);
      write('-> ' + message.value);
      message.value = '';
    });

    return h('div', { className: 'try ws-console' },
      h('h3', {}, 'Try it'),
      h('p', { className: 'muted' }, 'Opens a WebSocket from this page. The browser sends the access_token cookie with the handshake; fill in the token to send it as ?token= instead.'),
      token ? token.nodes : null,
      extras.map((f) => f.nodes),
      h('div', { className: 'actions' }, connectButton, closeButton),
      h('h4', {}, 'Events'),
      log,
      composer);
  }

  // ---- start ----

  async function start() {
    document.getElementById('docs-login').addEventListener('submit', onLogin);
    document.getElementById('docs-logout').addEventListener('click', onLogout);
    window.addEventListener('hashchange', openFromHash);
    const loadState = document.getElementById('load-state');
    try {
      const response = await fetch('/openapi.json', { credentials: 'same-origin' });
      if (!response.ok) throw new Error('HTTP ' + response.status);
      spec = await response.json();
    } catch (err) {
      loadState.textContent = 'Could not load /openapi.json: ' + err.message;
      loadState.className = 'form-error';
      return;
    }
    render();
    loadState.hidden = true;
    refreshAuthState();
  }

  start();
})();
