/*
 * app.js — the vigie web console.
 *
 * Purpose: a read-only view of a vigie collector for people: the instances
 * with their latest CPU, disk and network; a page per instance with graphs
 * over selectable ranges; the alarms and their states; the invoices.
 *
 * Design: plain JavaScript, no framework, no build step, no request to
 * anything but the vigie JSON API on this origin. The view is chosen by
 * the URL fragment (#/, #/instance/<id>?range=6h, #/alarms, #/invoices?
 * month=2026-10&project=p), so every view can be bookmarked and reloaded.
 * The bearer token is typed once into the sign-in box (shown when the API
 * answers 401) or passed once as "token=" in the fragment (scripts, the
 * browser test), then kept in sessionStorage (this tab only) and removed
 * from the address bar. Graphs are PNGs from GET /v1/graph, fetched with
 * the token and shown through blob: URLs (an <img src> could not send the
 * Authorization header); on a collector without /v1/graph they are drawn
 * as SVG from /v1/measures. The instance and alarm lists reload once a
 * minute while the tab is visible.
 *
 * Invariants: API data never reaches innerHTML (every text goes through
 * textContent or an attribute), so names cannot inject markup; an endpoint
 * this collector lacks (a JSON 404 "no such endpoint") or a service it has
 * not configured (503) shows a "not available" note in its section and
 * never breaks the rest of the page; a view that is no longer current
 * never writes into the page (generation counter). When a view has
 * finished loading, <body data-state="ready" data-view="..."> says so (the
 * browser test waits for it).
 */
'use strict';

(function () {
	const TOKEN_KEY = 'vigie.token';
	const RANGES = [
		['1h', 3600], ['6h', 6 * 3600], ['24h', 86400],
		['7d', 7 * 86400], ['30d', 30 * 86400],
	];
	const PAGE = 1000;          /* resources per API page */
	const MAX_PAGES = 20;       /* 20,000 resources at most per list */
	const PARALLEL = 6;         /* API requests in flight per view */
	const MAX_NAMED = 50;       /* alarms view: resources named by look-up */
	const TOP_LIMIT = 1000;     /* resources per GET /v1/top */
	const REFRESH_MS = 60000;   /* list views reload this often */
	const COLORS = ['#2f6fdf', '#e0692c', '#2a9d5b', '#9b46c8', '#c8324a',
		'#1c9bb0'];

	let generation = 0;         /* bumped on every navigation */
	let health = null;          /* GET /v1/health, once */
	const missing = {};         /* endpoint name -> true when absent */
	let blobs = [];             /* object URLs of this view's graphs */

	/* ---- DOM helpers --------------------------------------------------- */

	/* h('a', {href: '#/', class: 'x', text: 'hi'}, child, ...) */
	function h(tag, attrs, ...kids) {
		const e = document.createElement(tag);
		for (const [k, v] of Object.entries(attrs || {})) {
			if (v === undefined || v === null || v === false)
				continue;
			if (k === 'text')
				e.textContent = String(v);
			else if (k === 'class')
				e.className = v;
			else if (k.startsWith('on'))
				e.addEventListener(k.slice(2), v);
			else
				e.setAttribute(k, v === true ? '' : String(v));
		}
		for (const c of kids.flat(Infinity)) {
			if (c === undefined || c === null || c === false)
				continue;
			e.append(c instanceof Node ? c : document.createTextNode(String(c)));
		}
		return e;
	}

	const SVGNS = 'http://www.w3.org/2000/svg';
	function s(tag, attrs, ...kids) {
		const e = document.createElementNS(SVGNS, tag);
		for (const [k, v] of Object.entries(attrs || {})) {
			if (k === 'text')
				e.textContent = String(v);
			else
				e.setAttribute(k, String(v));
		}
		for (const c of kids.flat(Infinity))
			if (c)
				e.append(c);
		return e;
	}

	function note(kind, text) {
		return h('p', {class: 'note ' + kind, text: text});
	}

	/* ---- formatting ------------------------------------------------------ */

	function num(v, digits) {
		if (v === null || v === undefined || !isFinite(v))
			return '–';
		return Number(v).toLocaleString('en-US', {
			maximumFractionDigits: digits, minimumFractionDigits: 0,
		});
	}

	function scaled(v, unit, base) {
		if (v === null || v === undefined || !isFinite(v))
			return '–';
		const pre = base === 1024 ? ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi']
			: ['', 'k', 'M', 'G', 'T', 'P'];
		let i = 0, x = Math.abs(v);
		while (x >= base && i < pre.length - 1) {
			x /= base;
			i++;
		}
		const d = x >= 100 || i === 0 && Number.isInteger(v) ? 0 : x >= 10 ? 1 : 2;
		return (v < 0 ? '-' : '') + x.toFixed(d) + ' ' + pre[i] + unit;
	}

	function fmtValue(v, unit) {
		switch (unit) {
		case '%': return num(v, 1) + ' %';
		case 'B': return scaled(v, 'B', 1024);
		case 'B/s': return scaled(v, 'B/s', 1024);
		case 's/s': return num(v, 3) + ' s/s';
		case 's': return num(v, 3) + ' s';
		case 'count': return num(v, 2);
		case 'count/s': return num(v, 2) + ' /s';
		default: return num(v, 3) + (unit ? ' ' + unit : '');
		}
	}

	function fmtTime(iso) {
		if (!iso)
			return '–';
		const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(:\d\d)?/.exec(iso);
		return m ? m[1] + ' ' + m[2] + ' UTC' : iso;
	}

	function isoOf(ms) {
		return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
	}

	/* ---- the token ------------------------------------------------------- */

	function token() {
		try {
			return sessionStorage.getItem(TOKEN_KEY) || '';
		} catch (e) {
			return '';
		}
	}

	function setToken(t) {
		try {
			if (t)
				sessionStorage.setItem(TOKEN_KEY, t);
			else
				sessionStorage.removeItem(TOKEN_KEY);
		} catch (e) { /* storage disabled: the token lives until reload */ }
		showWho();
	}

	function showWho() {
		const t = token();
		document.getElementById('who').textContent = t
			? 'token …' + t.slice(-4) : 'no token';
		document.getElementById('signout').hidden = !t;
	}

	/* ---- routing ------------------------------------------------------------ */

	/* "#/instance/x?range=6h" -> {path: "/instance/x", params} */
	function parseHash() {
		let frag = location.hash.replace(/^#/, '');
		let path = '/', query = '';
		if (frag.startsWith('/')) {
			const q = frag.indexOf('?');
			path = q < 0 ? frag : frag.slice(0, q);
			query = q < 0 ? '' : frag.slice(q + 1);
		} else {
			query = frag; /* "#token=..." */
		}
		return {path: path, params: new URLSearchParams(query)};
	}

	function hashFor(path, params) {
		const q = params && params.toString();
		return '#' + path + (q ? '?' + q : '');
	}

	/* A token in the fragment goes to sessionStorage and leaves the URL. */
	function takeFragmentToken() {
		const r = parseHash();
		const t = r.params.get('token');
		if (t === null)
			return;
		r.params.delete('token');
		setToken(t);
		history.replaceState(null, '', location.pathname + location.search +
				     hashFor(r.path, r.params));
	}

	/* ---- the API ------------------------------------------------------------ */

	class ApiError extends Error {
		constructor(status, message) {
			super(message);
			this.status = status;
			/* A route this collector does not have: the router's 404. */
			this.absent = status === 404 && /^no such endpoint/.test(message);
		}
	}

	function enc(v) {
		return encodeURIComponent(v);
	}

	/* The per-project cap's 429 (docs/api.md, "Requests in flight per
	 * project"): its error's reason says whose requests fill it. */
	const BUSY = {
		project_concurrency: 'this project already has as many requests in flight ' +
			'as the collector allows',
		admin_concurrency: 'the admin tokens already have as many requests in ' +
			'flight as the collector allows',
	};
	const BUSY_TRIES = 9;

	/* The cap's reason of a 429 answer, or '' (another 429: publishing,
	 * notifications; or an older collector, whose error has no reason). */
	async function busyReason(r) {
		try {
			const j = await r.clone().json();
			const why = j && j.error && j.error.reason;
			return Object.prototype.hasOwnProperty.call(BUSY, why) ? why : '';
		} catch (e) {
			return '';
		}
	}

	/* While requests wait for a place: a line in the footer naming why. */
	const busyWaits = new Map();
	function showBusy() {
		let el = document.getElementById('busy');
		if (!busyWaits.size) {
			if (el)
				el.remove();
			return;
		}
		if (!el) {
			el = h('p', {id: 'busy', class: 'note busy', role: 'status'});
			document.body.insertBefore(el, document.getElementById('status'));
		}
		const why = busyWaits.values().next().value;
		el.dataset.reason = why;
		el.textContent = 'Waiting: ' + BUSY[why] + ' ([collector] ' +
			'http_max_concurrent_per_project; reason ' + why + '); asking again…';
	}

	async function api(path, opt) {
		const o = opt || {};
		const headers = {Accept: o.raw ? '*/*' : 'application/json'};
		const t = token();
		let r;
		if (t)
			headers.Authorization = 'Bearer ' + t;
		const init = {headers: headers, cache: 'no-store', credentials: 'omit'};
		if (o.method) /* silences: POST and DELETE from the alarms view */
			init.method = o.method;
		if (o.body !== undefined) {
			init.body = JSON.stringify(o.body);
			headers['Content-Type'] = 'application/json';
		}
		const me = {};
		let busy = '', waited = 0, attempt;
		try {
			for (attempt = 0; ; attempt++) {
				try {
					r = await fetch(path, init);
				} catch (e) {
					throw new ApiError(0, 'cannot reach the vigie API (' + e.message + ')');
				}
				/* Over the project's requests in flight ([collector]
				 * http_max_concurrent_per_project): a 429 with a short
				 * Retry-After, nothing done; a view runs up to PARALLEL
				 * requests at once, so wait and ask again, saying why
				 * meanwhile (the error's reason). A long Retry-After (a
				 * publish or notification limit) is an error to show. */
				const after = Number(r.headers.get('Retry-After'));
				if (r.status !== 429 || !(after >= 0 && after <= 5) ||
				    attempt >= BUSY_TRIES - 1)
					break;
				if ((busy = await busyReason(r))) {
					busyWaits.set(me, busy);
					showBusy();
				}
				const ms = 1000 * after + 250 * attempt;
				waited += ms;
				await new Promise((done) => setTimeout(done, ms));
			}
		} finally {
			busyWaits.delete(me);
			showBusy();
		}
		if (!r.ok) {
			let msg = 'HTTP ' + r.status;
			try {
				const j = await r.json();
				if (j && j.error && j.error.message)
					msg = j.error.message;
				const why = j && j.error && j.error.reason;
				if (r.status === 429 && Object.prototype.hasOwnProperty.call(BUSY, why))
					/* retries exhausted: say whose requests fill the
					 * cap, and what to do */
					msg = 'the collector is busy: ' + BUSY[why] + ' ([collector] ' +
						'http_max_concurrent_per_project; reason ' + why +
						'), still refused after ' + (attempt + 1) + ' tries over ' +
						Math.round(waited / 1000) + ' s; reload the page in a ' +
						'moment (a slow request, such as a long range or a ' +
						'storage daemon not answering, holds the places) — ' +
						'the API said: ' + msg;
			} catch (e) { /* not JSON */ }
			if (r.status === 401)
				askLogin(t ? 'The token was refused (' + msg + ').'
					 : 'This collector needs an API token.');
			throw new ApiError(r.status, msg);
		}
		if (r.status === 204)
			return {};
		return o.raw ? r.blob() : r.json();
	}

	/* Every page of a resource list (follows "next"). */
	async function listAll(query) {
		let out = [], cursor = null;
		for (let i = 0; i < MAX_PAGES; i++) {
			const j = await api('/v1/resources?' + query + '&limit=' + PAGE +
					    (cursor ? '&cursor=' + enc(cursor) : ''));
			out = out.concat(j.resources || []);
			if (!j.next)
				break;
			cursor = j.next;
		}
		return out;
	}

	/* Run async jobs with at most n in flight; resolves when all settled. */
	async function pool(jobs, n) {
		let next = 0;
		async function worker() {
			while (next < jobs.length) {
				const job = jobs[next++];
				try {
					await job();
				} catch (e) { /* each job shows its own error */ }
			}
		}
		const ws = [];
		for (let i = 0; i < Math.min(n, jobs.length); i++)
			ws.push(worker());
		await Promise.all(ws);
	}

	/* The note for an error inside one section of a view. */
	function unavailable(what, e) {
		if (e.absent)
			return note('absent', what + ': not available on this collector ' +
				    '(its API has no such endpoint yet).');
		if (e.status === 503)
			return note('absent', what + ': not available — ' + e.message + '.');
		if (e.status === 401)
			return note('error', what + ': sign in to see this.');
		return note('error', what + ': ' + e.message +
			    (e.status ? ' (HTTP ' + e.status + ')' : '') + '.');
	}

	/* ---- the sign-in box ----------------------------------------------------- */

	function askLogin(reason) {
		document.getElementById('login-reason').textContent = reason;
		document.getElementById('login').hidden = false;
		document.getElementById('view').hidden = true;
		document.body.dataset.state = 'login';
		document.getElementById('login-token').focus();
	}

	function hideLogin() {
		document.getElementById('login').hidden = true;
		document.getElementById('view').hidden = false;
	}

	/* ---- latest values ----------------------------------------------------------- */

	/* The last raw value of a metric of a resource object (gauges). */
	/* The names people know (Nova's, sent by the agent as attributes),
	 * else libvirt's name or the id. */
	function displayName(r) {
		const a = r.attributes || {};
		return a.display_name || r.name || r.id;
	}
	function projectName(r) {
		const a = r.attributes || {};
		return a.project_name || null;
	}
	/* A cell with the name people know and the id under it. */
	function namedCell(cls, name, id) {
		return h('td', {class: cls},
			 name && name !== id ? [h('div', {class: 'name', text: name}),
						h('div', {class: 'uuid', text: id})]
					     : (id || '–'));
	}

	function lastValue(res, metric) {
		const m = res && res.metrics && res.metrics[metric];
		return m && typeof m.last_value === 'number' ? m.last_value : null;
	}

	/* The end of a resource's data: its last sighting (an ended instance
	 * or a collector fed with old data still shows its last hours). */
	function dataEnd(res) {
		const t = Date.parse(res.ended_at || res.last_seen || '');
		const now = Date.now();
		return isFinite(t) && t < now ? t : now;
	}

	/* The latest rate of a counter (per second), from the last ten
	 * minutes of 1-minute points before the resource's last sighting. */
	async function latestRate(res, metric) {
		if (!res.metrics || !res.metrics[metric])
			return null;
		const end = dataEnd(res);
		const j = await api('/v1/measures?resource=' + enc(res.id) +
				    '&metric=' + enc(metric) +
				    '&start=' + enc(isoOf(end - 600000)) +
				    '&end=' + enc(isoOf(end)) + '&granularity=60');
		const pts = (j.points || []).filter((p) => p[1] !== null);
		return pts.length ? pts[pts.length - 1][1] : null;
	}

	/*
	 * Latest values of many resources for one view, with the fewest
	 * requests this collector allows: one GET /v1/top per (type, metric)
	 * for active resources (every disk's read rate at once), else one
	 * GET /v1/resources/{id}/latest per resource (shared by its metrics),
	 * else the last 1-minute point of /v1/measures. Counters come out as
	 * rates per second in all three.
	 */
	class Latest {
		constructor() {
			this.tops = {};
			this.latests = {};
		}

		top(type, metric) {
			const k = type + '|' + metric;
			if (!this.tops[k])
				this.tops[k] = api('/v1/top?metric=' + enc(metric) +
						   '&type=' + enc(type) + '&limit=' + TOP_LIMIT)
					.then((j) => ({
						values: new Map((j.resources || []).map((r) => [r.id, r.value])),
						complete: (j.matched || 0) <= (j.resources || []).length,
					}));
			return this.tops[k];
		}

		latest(res) {
			if (!this.latests[res.id])
				this.latests[res.id] = api('/v1/resources/' + enc(res.id) + '/latest');
			return this.latests[res.id];
		}

		async value(res, metric) {
			if (!res.metrics || !res.metrics[metric])
				return null;
			if (!missing.top && res.state === 'active') {
				try {
					const t = await this.top(res.type, metric);
					if (t.values.has(res.id))
						return t.values.get(res.id);
					if (t.complete)
						return null;
				} catch (e) {
					if (e.absent)
						missing.top = true;
					else if (e.status !== 400)
						throw e;
				}
			}
			if (!missing.latest) {
				try {
					const j = await this.latest(res);
					const m = j.metrics && j.metrics[metric];
					return m && typeof m.value === 'number' ? m.value : null;
				} catch (e) {
					if (!e.absent)
						throw e;
					missing.latest = true;
				}
			}
			return latestRate(res, metric);
		}

		/* The sum over resources (null if none has a value). */
		async sum(list, metric) {
			const vals = await Promise.all(list.map((r) => this.value(r, metric)));
			const got = vals.filter((v) => v !== null && v !== undefined);
			return got.length ? got.reduce((a, b) => a + b, 0) : null;
		}
	}

	/* ---- view: instances ----------------------------------------------------------- */

	async function viewInstances(main, params, gen) {
		const state = params.get('state') || 'active';
		const filter = (params.get('q') || '').toLowerCase();
		main.append(h('h1', {text: 'Instances'}));

		const form = h('form', {class: 'filters', id: 'instance-filters'},
			h('label', {}, 'Show ',
			  h('select', {name: 'state'},
			    ['active', 'ended', 'all'].map((v) =>
				    h('option', {value: v, selected: v === state, text: v})))),
			h('label', {}, ' Find ',
			  h('input', {name: 'q', type: 'search', value: params.get('q') || '',
				      placeholder: 'name, UUID, project or host'})),
			h('button', {type: 'submit', text: 'Apply'}));
		form.addEventListener('submit', (ev) => {
			ev.preventDefault();
			const p = new URLSearchParams();
			const fd = new FormData(form);
			if (fd.get('state') !== 'active')
				p.set('state', fd.get('state'));
			if (fd.get('q'))
				p.set('q', fd.get('q'));
			location.hash = hashFor('/', p);
		});
		form.querySelector('select').addEventListener('change',
			() => form.requestSubmit());
		main.append(form);

		const summary = h('div', {class: 'cards', id: 'summary'});
		main.append(summary);
		const alarmCard = h('a', {class: 'card', href: '#/alarms', id: 'card-alarms'},
				    h('span', {class: 'label', text: 'Alarms'}),
				    h('span', {class: 'big', text: '…'}));
		const sect = h('section', {id: 'instances'});
		main.append(sect);

		const stateQ = state === 'all' ? '' : '&state=' + state;
		let inst, disks, nics;
		try {
			[inst, disks, nics] = await Promise.all([
				listAll('type=instance' + stateQ),
				listAll('type=disk' + stateQ),
				listAll('type=nic' + stateQ),
			]);
		} catch (e) {
			sect.append(unavailable('Instances', e));
			return;
		}
		if (gen !== generation)
			return;
		if (filter)
			inst = inst.filter((r) => [r.id, r.name, displayName(r), r.project,
						   projectName(r), r.host]
				.some((v) => v && String(v).toLowerCase().includes(filter)));
		inst.sort((a, b) => displayName(a).localeCompare(displayName(b)));
		const byParent = {};
		for (const c of disks.concat(nics))
			(byParent[c.parent] = byParent[c.parent] || []).push(c);

		const cpuSum = inst.reduce((a, r) => a + (lastValue(r, 'cpu.util') || 0), 0);
		summary.append(
			h('div', {class: 'card'}, h('span', {class: 'label', text: 'Instances'}),
			  h('span', {class: 'big', id: 'count-instances', text: String(inst.length)})),
			h('div', {class: 'card'}, h('span', {class: 'label', text: 'Mean CPU'}),
			  h('span', {class: 'big', text: inst.length
				  ? fmtValue(cpuSum / inst.length, '%') : '–'})),
			alarmCard);

		if (!inst.length) {
			sect.append(note('empty', filter ? 'No instance matches “' +
				params.get('q') + '”.' : 'No ' + (state === 'all' ? '' : state + ' ') +
				'instances yet: start vigie-agent on a compute host.'));
			await alarmSummary(alarmCard);
			return;
		}
		const tbody = h('tbody');
		sect.append(h('table', {class: 'grid', id: 'instance-table'},
			h('thead', {}, h('tr', {},
				h('th', {text: 'Instance'}), h('th', {text: 'Project'}),
				h('th', {text: 'Host'}), h('th', {text: 'State'}),
				h('th', {class: 'num', text: 'CPU'}),
				h('th', {class: 'num', text: 'Disk read'}),
				h('th', {class: 'num', text: 'Disk write'}),
				h('th', {class: 'num', text: 'Net in'}),
				h('th', {class: 'num', text: 'Net out'}),
				h('th', {text: 'Last seen'}))),
			tbody));

		const jobs = [];
		const latest = new Latest();
		for (const r of inst) {
			const cpu = lastValue(r, 'cpu.util');
			const cells = {
				dr: h('td', {class: 'num disk-read', text: '…'}),
				dw: h('td', {class: 'num disk-write', text: '…'}),
				ni: h('td', {class: 'num net-in', text: '…'}),
				no: h('td', {class: 'num net-out', text: '…'}),
			};
			const bar = h('span', {class: 'bar'});
			bar.style.width = Math.max(0, Math.min(100, cpu || 0)) + '%';
			tbody.append(h('tr', {'data-id': r.id, class: 'state-' + r.state},
				h('td', {},
				  h('a', {class: 'name', href: '#/instance/' + enc(r.id),
					  text: displayName(r)}),
				  h('div', {class: 'uuid', text: r.id})),
				namedCell('project', projectName(r), r.project),
				h('td', {text: r.host || '–'}),
				h('td', {}, h('span', {class: 'badge ' + r.state, text: r.state})),
				h('td', {class: 'num cpu', 'data-value': cpu},
				  h('span', {class: 'meter'}, bar),
				  fmtValue(cpu, '%')),
				cells.dr, cells.dw, cells.ni, cells.no,
				h('td', {class: 'time', text: fmtTime(r.last_seen)})));
			const kids = byParent[r.id] || [];
			const dk = kids.filter((c) => c.type === 'disk');
			const nk = kids.filter((c) => c.type === 'nic');
			const fill = (cell, list, metric) => async () => {
				try {
					const v = await latest.sum(list, metric);
					cell.textContent = fmtValue(v, 'B/s');
					if (v !== null)
						cell.dataset.value = v;
				} catch (e) {
					cell.textContent = e.status === 401 ? '–' : '?';
					cell.title = e.message;
				}
			};
			jobs.push(fill(cells.dr, dk, 'disk.read.bytes'),
				  fill(cells.dw, dk, 'disk.write.bytes'),
				  fill(cells.ni, nk, 'net.rx.bytes'),
				  fill(cells.no, nk, 'net.tx.bytes'));
		}
		sect.append(h('p', {class: 'hint', text:
			'CPU is the last cpu.util sample; disk and network are the last ' +
			'1-minute rates summed over the instance\'s disks and NICs ' +
			'(“in” is what the guest received).'}));
		await Promise.all([pool(jobs, PARALLEL), alarmSummary(alarmCard)]);
	}

	async function alarmSummary(card) {
		const big = card.querySelector('.big');
		try {
			const j = await api('/v1/alarms?limit=1000');
			const list = j.alarms || [];
			const firing = list.filter((a) => a.state === 'alarm').length;
			big.textContent = firing + ' firing / ' + list.length;
			if (firing)
				card.classList.add('firing');
		} catch (e) {
			big.textContent = e.absent || e.status === 503 ? 'n/a' : '?';
			card.title = e.message;
		}
	}

	/* ---- view: one instance --------------------------------------------------------- */

	function graphPanels(res, kids) {
		const has = (r, m) => r.metrics && r.metrics[m];
		const panels = [];
		if (has(res, 'cpu.util'))
			panels.push({title: 'CPU utilisation', unit: '%',
				     series: [{res: res, metric: 'cpu.util', label: 'cpu.util'}]});
		const mem = ['memory.used', 'memory.size'].filter((m) => has(res, m));
		if (mem.length)
			panels.push({title: 'Memory', unit: 'B',
				     series: mem.map((m) => ({res: res, metric: m, label: m}))});
		for (const d of kids.filter((c) => c.type === 'disk')) {
			const ms = ['disk.read.bytes', 'disk.write.bytes'].filter((m) => has(d, m));
			if (ms.length)
				panels.push({title: 'Disk ' + d.name, unit: 'B/s',
					     series: ms.map((m) => ({res: d, metric: m,
						     label: m.split('.')[1]}))});
		}
		for (const n of kids.filter((c) => c.type === 'nic')) {
			const ms = ['net.rx.bytes', 'net.tx.bytes'].filter((m) => has(n, m));
			if (ms.length)
				panels.push({title: 'Network ' + n.name, unit: 'B/s',
					     series: ms.map((m) => ({res: n, metric: m,
						     label: m === 'net.rx.bytes' ? 'in (rx)' : 'out (tx)'}))});
		}
		return panels;
	}

	/* GET /v1/graph for a panel (docs/api.md): series 1 is resource/
	 * metric/legend, series N (2..8) resourceN/metricN/legendN; width and
	 * height are rrdtool's plot area, the PNG is a little larger. The
	 * panel's caption is the title, so the PNG gets none. */
	function graphUrl(panel, start, end, w, hgt) {
		const p = new URLSearchParams();
		panel.series.forEach((sr, i) => {
			const n = i ? String(i + 1) : '';
			p.set('resource' + n, sr.res.id);
			p.set('metric' + n, sr.metric);
			p.set('legend' + n, sr.label);
		});
		p.set('start', String(Math.floor(start / 1000)));
		p.set('end', String(Math.floor(end / 1000)));
		p.set('width', String(w));
		p.set('height', String(hgt));
		return '/v1/graph?' + p.toString();
	}

	async function drawPanel(fig, panel, start, end) {
		const body = fig.querySelector('.plot');
		if (!missing.graph) {
			const url = graphUrl(panel, start, end, 460, 150);
			const img = h('img', {class: 'graph', alt: panel.title,
					      'data-src': url, 'data-state': 'loading'});
			try {
				const blob = await api(url, {raw: true});
				img.src = URL.createObjectURL(blob);
				blobs.push(img.src);
				body.append(img);
				await img.decode();
				img.dataset.state = 'loaded';
				/* the PNG has its own legend, in rrdtool's colours */
				for (const k of fig.querySelectorAll('.key'))
					k.remove();
				img.dataset.width = img.naturalWidth;
				img.dataset.height = img.naturalHeight;
				return;
			} catch (e) {
				img.remove();
				if (!e.absent) {
					img.dataset.state = 'error';
					body.append(unavailable('Graph', e));
					return;
				}
				missing.graph = true; /* fall back to SVG from now on */
			}
		}
		await drawSvgPanel(body, panel, start, end);
	}

	/* The fallback: the panel's series from /v1/measures as an SVG chart. */
	async function drawSvgPanel(body, panel, start, end) {
		const series = [];
		let unit = panel.unit;
		try {
			for (const sr of panel.series) {
				const j = await api('/v1/measures?resource=' + enc(sr.res.id) +
						    '&metric=' + enc(sr.metric) +
						    '&start=' + enc(isoOf(start)) +
						    '&end=' + enc(isoOf(end)));
				unit = j.unit || unit;
				series.push({label: sr.label, points: (j.points || [])
					.filter((p) => p[1] !== null)
					.map((p) => [Date.parse(p[0]), p[1]])});
			}
		} catch (e) {
			body.append(unavailable('Graph', e));
			return;
		}
		body.append(svgChart(series, start, end, unit));
	}

	/* 1, 2, 2.5 or 5 times a power of ten, at least x. */
	function niceStep(x) {
		const p = Math.pow(10, Math.floor(Math.log10(x)));
		for (const m of [1, 2, 2.5, 5, 10])
			if (m * p >= x)
				return m * p;
		return 10 * p;
	}

	/* For bytes: a power of two in KiB, MiB, GiB... (256 MiB, 1 GiB). */
	function binaryStep(x) {
		let u = 1;
		while (x >= 1024 * u && u < Math.pow(1024, 5))
			u *= 1024;
		return u === 1 ? niceStep(x) : u * Math.pow(2, Math.ceil(Math.log2(x / u)));
	}

	/* An axis label: as many decimals as the tick step needs. */
	function fmtAxis(v, step, unit) {
		if (unit === 'B' || unit === 'B/s')
			return fmtValue(v, unit);
		const d = Math.max(0, Math.min(6, -Math.floor(Math.log10(step)) +
					   (step / Math.pow(10, Math.floor(Math.log10(step))) === 2.5 ? 1 : 0)));
		return v.toFixed(d) + (unit === '%' ? ' %' : unit && unit !== 'count' ? ' ' + unit : '');
	}

	function svgChart(series, start, end, unit) {
		const W = 560, H = 180, L = 64, R = 8, T = 10, B = 22;
		let max = 0, npts = 0;
		for (const sr of series)
			for (const p of sr.points) {
				max = Math.max(max, p[1]);
				npts++;
			}
		const step = unit === 'B' || unit === 'B/s'
			? binaryStep(max > 0 ? max / 4 : 0.25) : niceStep(max > 0 ? max / 4 : 0.25);
		max = step * Math.max(1, Math.ceil(max / step - 1e-9));
		const ticks = Math.round(max / step);
		const x = (t) => L + (t - start) / (end - start) * (W - L - R);
		const y = (v) => T + (1 - v / max) * (H - T - B);
		const svg = s('svg', {class: 'graph svg', viewBox: '0 0 ' + W + ' ' + H,
				      width: W, height: H, role: 'img',
				      'data-points': npts});
		for (let i = 0; i <= ticks; i++) {
			const v = step * i;
			svg.append(s('line', {x1: L, x2: W - R, y1: y(v), y2: y(v),
					      stroke: '#dde3ea', 'stroke-width': 1}));
			svg.append(s('text', {x: L - 4, y: y(v) + 4, 'text-anchor': 'end',
					      'font-size': 10, fill: '#555',
					      text: fmtAxis(v, step, unit)}));
		}
		for (const [t, anchor] of [[start, 'start'], [(start + end) / 2, 'middle'],
					   [end, 'end']])
			svg.append(s('text', {x: x(t), y: H - 6, 'text-anchor': anchor,
					      'font-size': 10, fill: '#555',
					      text: isoOf(t).slice(5, 16).replace('T', ' ')}));
		series.forEach((sr, i) => {
			if (!sr.points.length)
				return;
			const d = sr.points.map((p, k) => (k ? 'L' : 'M') +
				x(p[0]).toFixed(1) + ' ' + y(p[1]).toFixed(1)).join(' ');
			svg.append(s('path', {d: d, fill: 'none', stroke: COLORS[i % COLORS.length],
					      'stroke-width': 1.5}));
		});
		if (!npts)
			svg.append(s('text', {x: W / 2, y: H / 2, 'text-anchor': 'middle',
					      'font-size': 12, fill: '#888',
					      text: 'no data in this range'}));
		return svg;
	}

	async function viewInstance(main, id, params, gen) {
		const rangeName = params.get('range') || '1h';
		const range = (RANGES.find((r) => r[0] === rangeName) || RANGES[0]);
		let res, kids;
		try {
			[res, kids] = await Promise.all([
				api('/v1/resources/' + enc(id)),
				listAll('parent=' + enc(id)),
			]);
		} catch (e) {
			main.append(h('h1', {text: 'Instance'}), h('p', {class: 'uuid', text: id}),
				    e.status === 404 && !e.absent
					? note('error', 'No such instance (or not yours): ' + e.message)
					: unavailable('Instance', e));
			return;
		}
		if (gen !== generation)
			return;
		kids.sort((a, b) => (a.type + a.name).localeCompare(b.type + b.name));
		main.append(
			h('p', {class: 'crumbs'}, h('a', {href: '#/', text: 'Instances'}), ' › ',
			  displayName(res)),
			h('h1', {id: 'instance-name', text: displayName(res)},
			  ' ', h('span', {class: 'badge ' + res.state, text: res.state})));

		const a = res.attributes || {};
		const facts = [
			['UUID', res.id],
			['Project', a.project_name ? a.project_name + ' (' + res.project + ')' : res.project],
			['User', res.user], ['Flavor', res.flavor], ['Host', res.host],
			['Display name', a.display_name],
			['Domain', a.display_name && a.display_name !== res.name ? res.name : null],
			['First seen', fmtTime(res.first_seen)],
			['Last seen', fmtTime(res.last_seen)],
			['Ended', res.ended_at ? fmtTime(res.ended_at) : null],
		];
		main.append(h('dl', {class: 'facts', id: 'instance-facts'},
			facts.filter((f) => f[1]).map((f) =>
				[h('dt', {text: f[0]}), h('dd', {text: f[1]})])));

		const latest = [
			['cpu.util', 'CPU', '%'], ['vcpus', 'vCPUs', 'count'],
			['memory.size', 'Memory', 'B'], ['memory.used', 'Memory used', 'B'],
		].filter((m) => lastValue(res, m[0]) !== null);
		main.append(h('div', {class: 'cards', id: 'instance-latest'},
			latest.map((m) => h('div', {class: 'card', 'data-metric': m[0]},
				h('span', {class: 'label', text: m[1]}),
				h('span', {class: 'big', text: fmtValue(lastValue(res, m[0]), m[2])})))));

		const end = dataEnd(res);
		const start = end - range[1] * 1000;
		const ranges = h('nav', {class: 'ranges', id: 'ranges'}, 'Range: ',
			RANGES.map((r) => {
				const p = new URLSearchParams(params);
				p.set('range', r[0]);
				return h('a', {href: hashFor('/instance/' + enc(id), p),
					       class: r[0] === range[0] ? 'active' : '',
					       text: r[0]});
			}),
			h('span', {class: 'hint', text: ' ' + fmtTime(isoOf(start)) + ' → ' +
				   fmtTime(isoOf(end))}));
		main.append(h('h2', {text: 'Graphs'}), ranges);
		const grid = h('div', {class: 'graphs', id: 'graphs'});
		main.append(grid);
		const panels = graphPanels(res, kids);
		const jobs = panels.map((p) => {
			const fig = h('figure', {class: 'panel'},
				      h('figcaption', {},
					p.title, ' ',
					p.series.map((sr, i) => {
						const k = h('span', {class: 'key', text: sr.label});
						k.style.borderColor = COLORS[i % COLORS.length];
						return k;
					})),
				      h('div', {class: 'plot'}));
			grid.append(fig);
			return () => drawPanel(fig, p, start, end);
		});
		if (!panels.length)
			grid.append(note('empty', 'This instance has no graphable metric yet.'));

		main.append(h('h2', {text: 'Disks and network interfaces'}));
		if (kids.length) {
			main.append(h('table', {class: 'grid', id: 'devices'},
				h('thead', {}, h('tr', {}, h('th', {text: 'Device'}),
					h('th', {text: 'Type'}), h('th', {text: 'State'}),
					h('th', {text: 'Id'}), h('th', {text: 'Last seen'}))),
				h('tbody', {}, kids.map((k) => h('tr', {'data-id': k.id},
					h('td', {text: k.name}), h('td', {text: k.type}),
					h('td', {}, h('span', {class: 'badge ' + k.state, text: k.state})),
					h('td', {class: 'uuid', text: k.id}),
					h('td', {class: 'time', text: fmtTime(k.last_seen)}))))));
		} else {
			main.append(note('empty', 'No disks or interfaces reported.'));
		}

		const alarmBox = h('section', {id: 'instance-alarms'}, h('h2', {text: 'Alarms'}));
		main.append(alarmBox);
		await Promise.all([pool(jobs, 3), instanceAlarms(alarmBox, res, kids)]);
	}

	async function instanceAlarms(box, res, kids) {
		const ids = new Set([res.id].concat(kids.map((k) => k.id)));
		try {
			const j = await api('/v1/alarms?limit=1000');
			const mine = (j.alarms || []).filter((a) => ids.has(a.resource) ||
				(a.instances || []).some((i) => ids.has(i.resource)));
			box.append(mine.length ? alarmTable(mine)
				   : note('empty', 'No alarm watches this instance.'));
		} catch (e) {
			box.append(unavailable('Alarms', e));
		}
	}

	/* ---- view: alarms --------------------------------------------------------- */

	function condition(a) {
		if (a.type === 'composite')
			return a.rule || '–';
		if (a.type === 'event')
			return 'event ' + ((a.event && a.event.kind) || []).join(', ') +
				(a.event && a.event.detail ? ' with ' + a.event.detail : '');
		/* a group alarm: the members' statistic, then the group's */
		const metric = a.group ? a.group.statistic +
			(a.group.member_threshold !== undefined
				? '(>' + a.group.member_threshold + ')' : '') +
			' across the group of ' + a.statistic + ' ' + a.metric : a.metric;
		const parts = [a.group ? null : a.statistic, metric, a.comparison, a.threshold];
		let c = parts.filter((v) => v !== undefined && v !== null).join(' ');
		if (a.period)
			c += ' over ' + (a.datapoints_to_alarm && a.evaluation_periods
				? a.datapoints_to_alarm + ' of ' + a.evaluation_periods + ' × ' : '') +
				a.period + ' s';
		return c;
	}

	function target(a) {
		if (a.resource)
			return a.resource;
		if (a.type === 'event')
			return Object.entries(a.event || {})
				.filter(([k]) => k !== 'kind' && k !== 'detail')
				.map(([k, v]) => k + '=' + v).join(' ') || 'every resource';
		if (a.selector)
			return (a.group ? 'group: ' : '') + Object.entries(a.selector)
				.filter(([, v]) => v !== null && v !== '' &&
					!(typeof v === 'object' && !Object.keys(v).length))
				.map(([k, v]) => k + '=' + (typeof v === 'object'
					? Object.entries(v).map(([mk, mv]) => mk + ':' + mv).join(',') : v))
				.join(' ');
		return '–';
	}

	/* The Watches cell: an alarm on one resource names it as people know
	 * it (names: id -> display name), the id under it. */
	function watchesCell(a, names) {
		const n = a.resource && names && names[a.resource];
		return n ? h('td', {class: 'watches'}, h('div', {class: 'name', text: n}),
			     h('div', {class: 'uuid', text: a.resource}))
			 : h('td', {class: 'mono', text: target(a)});
	}

	/* Display names of the resources alarms watch (at most MAX_NAMED
	 * look-ups; a resource not found or without a name is left out). */
	async function watchedNames(list) {
		const ids = [...new Set(list.map((a) => a.resource).filter((v) => v))]
			.slice(0, MAX_NAMED);
		const names = {};
		await pool(ids.map((id) => async () => {
			try {
				const a = (await api('/v1/resources/' + enc(id))).attributes || {};
				if (a.display_name)
					names[id] = a.display_name;
			} catch (e) { /* the id alone */ }
		}), PARALLEL);
		return names;
	}

	function alarmTable(list, names) {
		return h('table', {class: 'grid alarms'},
			h('thead', {}, h('tr', {},
				h('th', {text: 'State'}), h('th', {text: 'Alarm'}),
				h('th', {text: 'Severity'}), h('th', {text: 'Condition'}),
				h('th', {text: 'Watches'}), h('th', {text: 'Since'}),
				h('th', {text: 'Reason'}))),
			h('tbody', {}, list.map((a) => h('tr', {'data-id': a.id,
							      class: a.enabled === false ? 'disabled' : ''},
				h('td', {}, h('span', {class: 'badge ' + (a.state || 'unknown'),
						       text: (a.state || '?').replace('_', ' ')})),
				h('td', {}, h('div', {class: 'name', text: a.name || a.id}),
				  a.group ? h('div', {class: 'hint', text: 'group alarm' +
					(a.cooldown ? ', cooldown ' + a.cooldown + ' s' : '')}) : null,
				  a.type === 'event' ? h('div', {class: 'hint', text: 'event alarm'}) : null,
				  a.description ? h('div', {class: 'hint', text: a.description}) : null,
				  a.enabled === false ? h('div', {class: 'hint', text: 'disabled'}) : null),
				h('td', {text: a.severity || '–'}),
				h('td', {class: 'mono', text: condition(a)}),
				watchesCell(a, names),
				h('td', {class: 'time', text: fmtTime(a.state_since)}),
				h('td', {text: a.state_reason || ''})))));
	}

	async function viewAlarms(main, params, gen) {
		main.append(h('h1', {text: 'Alarms'}));
		const sect = h('section', {id: 'alarms'});
		main.append(sect);
		let list = [];
		try {
			let cursor = null;
			for (let i = 0; i < MAX_PAGES; i++) {
				const j = await api('/v1/alarms?limit=1000' +
						    (cursor ? '&cursor=' + enc(cursor) : ''));
				list = list.concat(j.alarms || []);
				if (!j.next)
					break;
				cursor = j.next;
			}
		} catch (e) {
			sect.append(unavailable('Alarms', e));
			return;
		}
		if (gen !== generation)
			return;
		const order = {alarm: 0, insufficient_data: 1, ok: 2};
		list.sort((a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3) ||
			  String(a.name || a.id).localeCompare(String(b.name || b.id)));
		const count = (st) => list.filter((a) => a.state === st).length;
		sect.append(h('div', {class: 'cards', id: 'alarm-counts'},
			[['alarm', 'Firing'], ['insufficient_data', 'Insufficient data'],
			 ['ok', 'OK']].map(([st, label]) =>
				h('div', {class: 'card ' + (count(st) ? st : ''), 'data-state': st},
				  h('span', {class: 'label', text: label}),
				  h('span', {class: 'big', text: String(count(st))})))));
		const names = await watchedNames(list);
		if (gen !== generation)
			return;
		sect.append(list.length ? alarmTable(list, names)
			    : note('empty', 'No alarms defined. Create one with ' +
				   '`vigie alarm create` or POST /v1/alarms.'));
		const sil = h('section', {id: 'silences'}, h('h2', {text: 'Silences'}));
		main.append(sil);
		await silences(sil, gen);
	}

	/* Silences not yet ended (GET /v1/silences), each with an Expire
	 * button, and a form for a new one (POST /v1/silences). */
	async function silences(box, gen) {
		let list;
		try {
			list = (await api('/v1/silences')).silences || [];
		} catch (e) {
			box.append(unavailable('Silences', e));
			return;
		}
		if (gen !== generation)
			return;
		const reload = () => {
			box.replaceChildren(h('h2', {text: 'Silences'}));
			silences(box, generation);
		};
		const msg = h('p', {class: 'hint', id: 'silence-msg'});
		if (list.length)
			box.append(h('table', {class: 'grid silences'},
				h('thead', {}, h('tr', {},
					h('th', {text: 'State'}), h('th', {text: 'Matchers'}),
					h('th', {text: 'Until'}), h('th', {text: 'By'}),
					h('th', {text: 'Why'}), h('th', {text: ''}))),
				h('tbody', {}, list.map((x) => h('tr', {'data-id': x.id},
					h('td', {text: x.state}),
					h('td', {text: Object.entries(x.matchers || {}).map(([k, v]) =>
						k + '=' + (typeof v === 'string' ? v : JSON.stringify(v)))
						.join(' ') || '(everything)'}),
					h('td', {text: fmtTime(x.ends_at)}),
					h('td', {text: x.created_by}),
					h('td', {text: x.comment}),
					h('td', {}, h('button', {type: 'button', text: 'Expire',
						onclick: async () => {
							try {
								await api('/v1/silences/' + enc(x.id),
									  {method: 'DELETE'});
								reload();
							} catch (e) {
								msg.textContent = e.message;
							}
						}})))))));
		else
			box.append(note('empty', 'No silences in force.'));
		const f = {};
		const field = (name, ph) => (f[name] = h('input', {type: 'text', name: name,
								    placeholder: ph, size: 14}));
		box.append(h('form', {id: 'silence-form', onsubmit: async (ev) => {
			ev.preventDefault();
			const m = {};
			for (const k of ['host', 'alarm', 'resource', 'project'])
				if (f[k].value.trim())
					m[k] = f[k].value.trim();
			try {
				await api('/v1/silences', {method: 'POST', body: {
					matchers: m, duration: f.duration.value.trim() || '2h',
					created_by: f.created_by.value.trim(),
					comment: f.comment.value.trim()}});
				reload();
			} catch (e) {
				msg.textContent = e.message;
			}
		}}, field('host', 'host'), field('alarm', 'alarm name'),
		   field('resource', 'resource id'), field('project', 'project (admin)'),
		   field('duration', '2h'), field('created_by', 'who'),
		   field('comment', 'why'), h('button', {type: 'submit', text: 'Silence'})),
		  msg);
	}

	/* ---- view: expressions across series (GET /v1/query) ---------------------- */

	async function viewQuery(main, params, gen) {
		const expr = params.get('expr') || '';
		const rangeName = params.get('range') || '1h';
		const range = (RANGES.find((r) => r[0] === rangeName) || RANGES[0]);
		main.append(h('h1', {text: 'Query'}));
		const input = h('input', {type: 'text', name: 'expr', id: 'expr-input',
					  value: expr, spellcheck: 'false', size: 70,
					  placeholder: 'mean(cpu.util{type="instance"}, by=project)'});
		const form = h('form', {class: 'filters', id: 'expr-form'},
			h('label', {}, 'Expression ', input),
			h('select', {name: 'range'}, ...RANGES.map((r) => {
				const o = h('option', {value: r[0], text: r[0]});
				if (r[0] === range[0])
					o.selected = true;
				return o;
			})),
			h('button', {type: 'submit', text: 'Run'}));
		form.addEventListener('submit', (ev) => {
			ev.preventDefault();
			const f = new FormData(form);
			location.hash = hashFor('/query', new URLSearchParams(
				{expr: f.get('expr') || '', range: f.get('range') || '1h'}));
		});
		main.append(form);
		const sect = h('section', {id: 'expr-result'});
		main.append(sect);
		if (!expr) {
			sect.append(note('empty', 'Series by selector, arithmetic, resample(), ' +
				'rolling(), fill(), sum/mean/min/max/count/pNN(x, by=LABEL), ' +
				'top/bottom(x, N): see docs/api.md, "Expressions".'));
			return;
		}
		const end = Date.now(), start = end - range[1] * 1000;
		let j;
		try {
			j = await api('/v1/query?expr=' + enc(expr) + '&start=' +
				      enc(isoOf(start)) + '&end=' + enc(isoOf(end)));
		} catch (e) {
			if (gen !== generation)
				return;
			const m = /^at (\d+): /.exec(e.message || '');
			const err = h('div', {class: 'note error', id: 'expr-error'},
				      h('div', {text: e.message}));
			if (m) /* point at the position in the expression */
				err.append(h('pre', {class: 'caret',
					text: expr + '\n' + ' '.repeat(Number(m[1])) + '^'}));
			sect.append(err);
			return;
		}
		if (gen !== generation)
			return;
		if (j.scalar !== undefined) {
			sect.append(h('p', {class: 'big', id: 'expr-scalar', text: num(j.scalar)}));
			return;
		}
		const series = (j.series || []).map((sr) => ({
			label: sr.key || '(all)',
			points: (sr.points || []).filter((p) => p[1] !== null)
				.map((p) => [Date.parse(p[0]), p[1]])}));
		if (!series.length) {
			sect.append(note('empty', 'No series matched.'));
			return;
		}
		const shown = series.slice(0, 24);
		sect.append(h('figure', {class: 'panel'}, svgChart(shown, start, end, ''),
			h('figcaption', {}, ...shown.map((sr, i) =>
				h('span', {class: 'legend', 'data-key': sr.label},
				  s('svg', {class: 'swatch', width: 10, height: 10},
				    s('rect', {width: 10, height: 10,
					       fill: COLORS[i % COLORS.length]})),
				  ' ' + sr.label + ' ')))));
		sect.append(h('p', {class: 'meta', text: series.length + ' series' +
			(series.length > shown.length ? ' (the first ' + shown.length +
			 ' drawn)' : '') + ', every ' + j.granularity + ' s; ' +
			j.read.series + ' series read'}));
	}

	/* ---- view: invoices ------------------------------------------------------------ */

	function thisMonth() {
		const t = health && Date.parse(health.time);
		return isoOf(isFinite(t) ? t : Date.now()).slice(0, 7);
	}

	async function download(url, name) {
		const blob = await api(url, {raw: true});
		const a = h('a', {href: URL.createObjectURL(blob), download: name});
		document.body.append(a);
		a.click();
		a.remove();
	}

	function invoiceDoc(inv, month) {
		const box = h('div', {class: 'invoice', id: 'invoice'});
		const title = {'credit-note': 'Credit note ', 'usage-statement': 'Usage statement '}[inv.document] || 'Invoice ';
		box.append(h('h2', {}, title, h('span', {class: 'mono', text: inv.number || inv.invoice || ''}),
			      ' ', h('span', {class: 'badge ' + (inv.finalized_at ? 'final' : 'draft'),
					      text: inv.finalized_at ? 'final' : 'draft'})));
		box.append(h('dl', {class: 'facts'},
			h('dt', {text: 'Project'}), h('dd', {text: inv.project_name
				? inv.project_name + ' (' + inv.project + ')' : inv.project || '–'}),
			h('dt', {text: 'Period'}), h('dd', {text: inv.period
				? fmtTime(inv.period.start) + ' → ' + fmtTime(inv.period.end) : month}),
			h('dt', {text: 'Currency'}), h('dd', {text: inv.currency || '–'}),
			h('dt', {text: 'Total'}), h('dd', {class: 'total', id: 'invoice-total',
							   text: (inv.total || '–') + ' ' + (inv.currency || '')})));
		const csv = h('button', {type: 'button', text: 'Download CSV'});
		const html = h('button', {type: 'button', text: 'Printable HTML'});
		const q = '/v1/invoices?month=' + enc(month) + '&project=' + enc(inv.project);
		csv.addEventListener('click', () => download(q + '&format=csv',
			'invoice-' + month + '-' + inv.project + '.csv').catch((e) => alert(e.message)));
		html.addEventListener('click', () => download(q + '&format=html',
			'invoice-' + month + '-' + inv.project + '.html').catch((e) => alert(e.message)));
		box.append(h('p', {class: 'actions'}, csv, ' ', html));
		const lines = inv.lines || [];
		box.append(lines.length ? h('table', {class: 'grid', id: 'invoice-lines'},
			h('thead', {}, h('tr', {}, h('th', {text: 'Resource'}),
				h('th', {text: 'Type'}), h('th', {text: 'Description'}),
				h('th', {class: 'num', text: 'Quantity'}),
				h('th', {class: 'num', text: 'Rate'}),
				h('th', {class: 'num', text: 'Amount'}))),
			h('tbody', {}, lines.map((l) => h('tr', {},
				h('td', {text: l.resource_name || l.resource_id}),
				h('td', {text: l.usage_type + (l.adjustment_for
					? ' (adj. ' + l.adjustment_for + ')' : '')}),
				h('td', {text: l.description}),
				h('td', {class: 'num', text: l.quantity + ' ' + l.unit}),
				h('td', {class: 'num', text: l.rate}),
				h('td', {class: 'num', text: l.amount})))))
			: note('empty', 'No usage in this month.'));
		if (inv.subtotals)
			box.append(h('h3', {text: 'Subtotals'}), h('dl', {class: 'facts subtotals'},
				Object.entries(inv.subtotals).map(([k, v]) =>
					[h('dt', {text: k}), h('dd', {class: 'num', text: v})])));
		for (const t of inv.tax || [])
			box.append(h('p', {class: 'num', text: 'Tax ' + t.rate + ' on ' + t.base + ': ' + t.amount}));
		if (inv.amount_due && inv.document && inv.document !== 'usage-statement')
			box.append(h('p', {class: 'total', id: 'invoice-due',
					   text: 'Amount due: ' + inv.amount_due + ' ' + (inv.currency || '')}));
		for (const w of inv.warnings || [])
			box.append(note('warn', w));
		return box;
	}

	/* The month list's count of an invoice's warnings (docs/api.md),
	 * marked when there is any; '–' from a collector that sends none. */
	function warningsCell(n) {
		const have = Number.isInteger(n);
		return h('td', {class: 'num warnings' + (n > 0 ? ' warn' : ''),
				'data-warnings': have ? n : null, text: have ? n : '–'});
	}

	async function viewInvoices(main, params, gen) {
		const month = /^\d{4}-\d\d$/.test(params.get('month') || '')
			? params.get('month') : thisMonth();
		const project = params.get('project');
		main.append(h('h1', {text: 'Invoices'}));
		const form = h('form', {class: 'filters', id: 'invoice-month'},
			h('label', {}, 'Month ', h('input', {type: 'month', name: 'month', value: month})),
			h('button', {type: 'submit', text: 'Show'}));
		form.addEventListener('submit', (ev) => {
			ev.preventDefault();
			const p = new URLSearchParams({month: new FormData(form).get('month') || month});
			if (project)
				p.set('project', project);
			location.hash = hashFor('/invoices', p);
		});
		main.append(form);
		const sect = h('section', {id: 'invoices'});
		main.append(sect);
		let j;
		try {
			j = await api('/v1/invoices?month=' + enc(month) +
				      (project ? '&project=' + enc(project) : ''));
		} catch (e) {
			sect.append(e.status === 404 && !e.absent
				? note('empty', e.message + '.') : unavailable('Invoices', e));
			return;
		}
		if (gen !== generation)
			return;
		if (Array.isArray(j.invoices)) {
			sect.append(h('p', {}, 'Month ', h('strong', {text: j.month || month}), ': ',
				      h('span', {class: 'badge ' + j.status, text: j.status || ''})));
			if (!j.invoices.length) {
				sect.append(note('empty', 'No invoice for ' + month + '.'));
				return;
			}
			sect.append(h('table', {class: 'grid', id: 'invoice-list'},
				h('thead', {}, h('tr', {}, h('th', {text: 'Project'}),
					h('th', {text: 'Invoice'}), h('th', {class: 'num', text: 'Lines'}),
					h('th', {class: 'num', text: 'Total'}),
					h('th', {class: 'num', text: 'Warnings',
						 title: 'usage without a price, adjustments withheld: see the invoice'}))),
				h('tbody', {}, j.invoices.map((inv) => h('tr', {'data-project': inv.project},
					/* the project's reported name (an error entry
					 * carries it too), the id under it */
					h('td', {}, h('a', {href: hashFor('/invoices',
						new URLSearchParams({month: month, project: inv.project})),
						text: inv.project_name || inv.project}),
					  inv.project_name ? h('div', {class: 'uuid', text: inv.project}) : null),
					/* an invoice that cannot be computed: its error,
					 * the others still listed (docs/api.md) */
					inv.error ? h('td', {colspan: 4, class: 'error',
							     text: inv.error.message || 'cannot be computed'})
						  : [h('td', {class: 'mono', text: inv.invoice}),
						     h('td', {class: 'num', text: inv.lines}),
						     h('td', {class: 'num', text: inv.total + ' ' + inv.currency}),
						     warningsCell(inv.warnings)])))));
		} else {
			if (project)
				sect.append(h('p', {class: 'crumbs'}, h('a', {href: hashFor('/invoices',
					new URLSearchParams({month: month})), text: 'All projects'}),
					' › ', project));
			sect.append(invoiceDoc(j, month));
		}
	}

	/* ---- navigation -------------------------------------------------------------------- */

	async function loadHealth() {
		const foot = document.getElementById('status');
		try {
			health = await api('/v1/health');
			foot.textContent = 'vigie ' + health.version + ' · ' + location.host +
				' · server time ' + fmtTime(health.time);
		} catch (e) {
			foot.textContent = 'API: ' + e.message;
		}
	}

	async function route() {
		const gen = ++generation;
		const r = parseHash();
		const main = document.getElementById('view');
		hideLogin();
		main.replaceChildren();
		for (const u of blobs)
			URL.revokeObjectURL(u);
		blobs = [];
		document.body.dataset.state = 'loading';
		let view = 'instances', run;
		const m = /^\/instance\/(.+)$/.exec(r.path);
		if (m) {
			view = 'instance';
			let id;
			try {
				id = decodeURIComponent(m[1]);
			} catch (e) {
				id = m[1];
			}
			run = viewInstance(main, id, r.params, gen);
		} else if (r.path === '/alarms') {
			view = 'alarms';
			run = viewAlarms(main, r.params, gen);
		} else if (r.path === '/invoices') {
			view = 'invoices';
			run = viewInvoices(main, r.params, gen);
		} else if (r.path === '/query') {
			view = 'query';
			run = viewQuery(main, r.params, gen);
		} else {
			run = viewInstances(main, r.params, gen);
		}
		document.body.dataset.view = view;
		for (const a of document.querySelectorAll('#nav a'))
			a.classList.toggle('active', a.dataset.nav === (view === 'instance'
				? 'instances' : view));
		try {
			await run;
		} catch (e) {
			if (gen === generation)
				main.append(unavailable('This page', e));
		}
		if (gen === generation && document.body.dataset.state !== 'login') {
			document.body.dataset.state = 'ready';
			if (view === 'instances' || view === 'alarms')
				setTimeout(() => refresh(gen), REFRESH_MS);
		}
	}

	/* The list views follow the collector: reload them once a minute
	 * while the tab is visible and nobody is typing in a form. */
	function refresh(gen) {
		const typing = document.activeElement &&
			/^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName);
		if (gen !== generation)
			return;
		if (document.hidden || typing)
			setTimeout(() => refresh(gen), REFRESH_MS);
		else
			route();
	}

	function start() {
		takeFragmentToken();
		showWho();
		document.getElementById('login-form').addEventListener('submit', (ev) => {
			ev.preventDefault();
			const input = document.getElementById('login-token');
			setToken(input.value.trim());
			input.value = '';
			route();
		});
		document.getElementById('signout').addEventListener('click', () => {
			setToken('');
			askLogin('Signed out. Paste a token to sign in again.');
		});
		window.addEventListener('hashchange', () => {
			takeFragmentToken();
			route();
		});
		loadHealth().then(route);
	}

	start();
})();
