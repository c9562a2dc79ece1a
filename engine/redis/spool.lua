#!lua name=spool2
--[[
spool.lua - the Redis store's functions: one per engine operation, each one
atomic call (engine/redis/, docs/scale-out.md). The daemon keeps no index;
everything a queue is lives in these keys (layout 2, docs/decisions.md
"Redis Cluster: one per-family layout"). F is the queue's family, its name
up to the first '.'; every key of a family carries the hash tag {P:F}, the
namespace's own keys the tag {P}:

  {P}:layout        string           "2"
  {P}:queues        ZSET (scores 0)  queue names, byte order
  {P}:families      SET              every family that ever had a queue
  {P}:timers        ZSET             family -> its earliest due time
  {P}:seq           hash ms c        the id generator (DESIGN section 3)
  {P}:defaults      string           a trap for daemons of layout 1
  {P:F}:queues      ZSET (scores 0)  the family's queue names
  {P:F}:gen         counter          incarnation numbers of its queues
  {P:F}:timers      ZSET             queue -> its earliest due time
  {P:F}:defaults    hash             the settings of a new queue
  {P:F}:q:Q:s       hash             settings, owner, mode, ctime, gen
  {P:F}:q:Q:r       ZSET (scores 0)  VISIBLE: 12 bytes, big-endian
                                     0x7fffffff - prio (4) .. ID's value (8)
  {P:F}:q:Q:d|l|k   ZSET (scores 0)  DELAYED, LEASED, CORRUPT ids
  {P:F}:q:Q:t       ZSET             ID -> due ms (delays, leases)
  {P:F}:q:Q:b       hash             ID -> meta (MFMT, MLEN bytes) .. the body
                                     record (engine/core/record.c)
  {P:F}:q:Q:c       hash             counters and bytes
  {P:F}:q:Q:u       ZSET             dedup key -> expiry ms
  {P:F}:q:Q:v       HASH             dedup key -> id of the message kept
  {P:F}:q:Q:m       hash             the queue's metadata (spool_queue_meta_*)
  channel {P}:w     "v ORIGIN Q" (Q gained visible messages), "c ORIGIN Q"
                    (settings changed), "x ORIGIN Q" (deleted),
                    "t ORIGIN Q DUE" (a new timer)

Every function gets KEYS[1] = "{P:F}" of the queue it is about ("{P}" when
none), ARGV[1] = now ("" for the server's TIME), ARGV[2] = the caller's
origin token (for the wake-up channel), ARGV[3] = "2/s/P" (layout 2, a
single primary, the prefix: a name holds no '/', so a daemon of layout 1
is told, not obeyed); the arguments of each function follow, counted
from ARGV[3] as before. Returns {code, woken queues, ...}: code is 0 or
-errno. On a single primary a function may touch every family's keys.
The daemon replaces @VERSION@ with a hash of this text before loading.
]]

local VERSION = '@VERSION@'
local ENOENT, EIO, EAGAIN, EEXIST, ENOTEMPTY, EINVAL, EFBIG, EDQUOT =
	-2, -5, -11, -17, -39, -22, -27, -122
local ENODATA, EXDEV = -61, -18
local VIS, DEL, LEA, COR = 1, 2, 4, 8
-- MOVING: on its way to a queue of another family (the Cluster's outbox
-- move): in no index, its field still in {P:F}:q:Q:b
local MOV = 16
local XM = '\1x'        -- the outbox's member of {P:F}:timers
local XAGE = 30000      -- an outbox entry this old is replayed (ms)
local INAGE = 3600000   -- {P:F}:in remembers a move this long (ms)
-- the queue (this incarnation) is gone: -ENOENT, and the handle is dead
local GONE = -100000
local TWO21 = 2097152
local B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
local STEP = 1000

local NS, PFX, NOW, ORIGIN, WOKE, WOKESET, TICKED
-- CLUSTER: the Cluster's mode ("2/c"): a function touches its family's
-- slot only, and NSFX collects what the namespace's keys ({P}) need, for
-- the daemon's second call (spool2_ns); on a single primary ("2/s") they
-- are written at once, in the same atomic call
local CLUSTER, NSFX

local function S(n) return string.format('%.0f', n) end
-- the family of q, and its hash tag
local FT                -- queue -> its family's tag, for one call
local function fam(q) return string.match(q, '^[^.]*') end
local function ftag(f) return '{' .. PFX .. ':' .. f .. '}' end
local function ft(q)
	local t = FT[q]
	if not t then
		t = ftag(fam(q))
		FT[q] = t
	end
	return t
end
local function qk(q, t) return ft(q) .. ':q:' .. q .. ':' .. t end

-- a message's meta, packed in front of its body record in {P}:q:Q:b:
-- state, priority, receives, size, due, first received, sent (ms)
local MFMT, MLEN = '<Bi4I4I4ddd', 37

local function start(K, A)
	local marker = A[3] or ''
	local mode = string.sub(marker, 1, 4)
	if mode ~= '2/s/' and mode ~= '2/c/' then
		error('spool: this store has layout 2 (per-family keys); ' ..
		      'the calling spoolfs is older: upgrade it')
	end
	CLUSTER = mode == '2/c/'
	NSFX = {}
	if CLUSTER then
		-- the probe: a key that never exists, of KEYS[1]'s slot. While
		-- a Cluster migrates the slot, the source node refuses a
		-- function's access to a missing key of it ("a non local key")
		-- and the function stops there, its writes so far kept; a queue's
		-- sets come and go (an empty ZSET is no key), so this first
		-- access makes the refusal come before any write (the daemon
		-- retries after the move: conn.c)
		redis.call('EXISTS', (string.match(K[1] or '', '^{[^}]*}') or
				      '{}') .. ':probe')
	end
	PFX = string.sub(marker, 5)
	NS = '{' .. PFX .. '}'
	FT = {}
	table.remove(A, 3)
	ORIGIN = A[2]
	if A[1] ~= '' then
		NOW = tonumber(A[1])
	else
		local t = redis.call('TIME')
		NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
	end
	WOKE, WOKESET, TICKED = {}, {}, {}
end

local function publish(kind, q, extra)
	local m = kind .. ' ' .. ORIGIN .. ' ' .. q
	if extra then m = m .. ' ' .. extra end
	redis.call('PUBLISH', NS .. ':w', m)
end

-- q gained a visible message: tell the caller and the other hosts
local function woke(q)
	if WOKESET[q] then return end
	WOKESET[q] = true
	WOKE[#WOKE + 1] = q
	publish('v', q)
end

local function reply(code, ...)
	return {code, WOKE, NSFX, ...}
end

-- ------------------------------------------------------ namespace keys

-- One effect on the namespace's keys: 'q+' Q, 'q-' Q (the registry of
-- names), 'f+' F (the families), 't' F due ver (F's earliest due, '' none,
-- stored only if ver is newer than the one kept: the Cluster's), 't0' F
-- due (the same, unversioned: one primary), 'fix' F n Q1..Qn (the names
-- of F in the registry are exactly Q1..Qn: the sweep). Returns the number
-- of arguments it took.
local function ns_apply(A, i)
	local op, x = A[i], A[i + 1]
	if op == 'q+' then
		redis.call('ZADD', NS .. ':queues', 0, x)
		return 2
	elseif op == 'q-' then
		redis.call('ZREM', NS .. ':queues', x)
		return 2
	elseif op == 'f+' then
		redis.call('SADD', NS .. ':families', x)
		return 2
	elseif op == 't' or op == 't0' then
		local due, n = A[i + 2], 3
		if op == 't' then
			n = 4
			local kept = redis.call('HGET', NS .. ':tver', x)
			if kept and tonumber(kept) >= tonumber(A[i + 3]) then
				return n
			end
			redis.call('HSET', NS .. ':tver', x, A[i + 3])
		end
		if due ~= '' then
			redis.call('ZADD', NS .. ':timers', due, x)
		else
			redis.call('ZREM', NS .. ':timers', x)
		end
		return n
	elseif op == 'fix' then
		local n, want = tonumber(A[i + 2]), {}
		for k = 1, n do
			want[A[i + 2 + k]] = true
			redis.call('ZADD', NS .. ':queues', 0, A[i + 2 + k])
		end
		local have = redis.call('ZRANGE', NS .. ':queues', '[' .. x,
					'[' .. x, 'BYLEX')
		local more = redis.call('ZRANGE', NS .. ':queues', '[' .. x .. '.',
					'(' .. x .. '/', 'BYLEX')
		for _, q in ipairs(more) do have[#have + 1] = q end
		for _, q in ipairs(have) do
			if not want[q] then
				redis.call('ZREM', NS .. ':queues', q)
			end
		end
		return 3 + n
	end
	error('spool: unknown namespace effect ' .. tostring(op))
end

-- a namespace effect (a list): written now on one primary, returned in
-- a Cluster
local function nst(e)
	if CLUSTER then
		for _, v in ipairs(e) do NSFX[#NSFX + 1] = v end
	else
		ns_apply(e, 1)
	end
end

local function ns(...) nst({...}) end

-- ---------------------------------------------------------------- ids

local function b62(ms, c)
	local out, hi, lo = {}, ms, c
	for i = 11, 1, -1 do
		local r = hi % 62
		hi = (hi - r) / 62
		local x = r * TWO21 + lo
		local r2 = x % 62
		lo = (x - r2) / 62
		out[i] = B62:sub(r2 + 1, r2 + 1)
	end
	return table.concat(out)
end

-- where a family's counter starts in each millisecond, in the Cluster's
-- mode: a hash of its name below 2^20, spread (an odd multiplier is a
-- bijection mod 2^20, so "a" and "b" land far apart). Two families' ids
-- then differ although each has its own generator, and a move between
-- them keeps its id but in a rare clash (f_xin)
local function id_base(f)
	local h = 0
	for i = 1, #f do h = (h * 31 + string.byte(f, i)) % 1048576 end
	return (h * 699053) % 1048576
end

-- n new ids for queue q: the first is max(last + 1, now << 21 | base);
-- returns (ms, c) of it. One generator per namespace on one primary
-- ({P}:seq, base 0), one per family in a Cluster ({P:F}:seq, base
-- id_base(F))
local function ids_take(q, n)
	local key = CLUSTER and ft(q) .. ':seq' or NS .. ':seq'
	local s = redis.call('HMGET', key, 'ms', 'c')
	local ms, c = tonumber(s[1]), tonumber(s[2])
	if not ms or NOW > ms then
		ms, c = NOW, CLUSTER and id_base(fam(q)) or 0
	else
		c = c + 1
		if c >= TWO21 then ms, c = ms + 1, 0 end
	end
	local lms, lc = ms, c + n - 1
	while lc >= TWO21 do lms, lc = lms + 1, lc - TWO21 end
	redis.call('HSET', key, 'ms', S(lms), 'c', S(lc))
	return ms, c
end

local function id_add(ms, c, k)
	c = c + k
	while c >= TWO21 do ms, c = ms + 1, c - TWO21 end
	return ms, c
end

-- ---------------------------------------------------------- settings

local function settings(q)
	local h = redis.call('HGETALL', qk(q, 's'))
	if #h == 0 then return nil end
	local s = {}
	for i = 1, #h, 2 do s[h[i]] = h[i + 1] end
	for _, f in ipairs({'vt', 'delay', 'prio', 'max_size', 'max_depth',
			     'max_recv', 'ret', 'dedup', 'dwin', 'paused',
			     'gen'}) do
		s[f] = tonumber(s[f]) or 0
	end
	s.dl = s.dl or ''
	s.fanout = s.fanout or ''
	return s
end

-- the settings of q if it exists and is incarnation gen ('' any)
local function live(q, gen)
	local s = settings(q)
	if not s then return nil end
	if gen ~= '' and S(s.gen) ~= gen then return nil end
	return s
end

local function depth(q)
	return redis.call('ZCARD', qk(q, 'r')) + redis.call('ZCARD', qk(q, 'd'))
		+ redis.call('ZCARD', qk(q, 'l')) + redis.call('ZCARD', qk(q, 'k'))
end

local function room(q, s, n)
	if s.max_depth > 0 and depth(q) + n > s.max_depth then return EDQUOT end
	return 0
end

-- ------------------------------------------------------------ messages

local function meta_get(q, id)
	local v = redis.call('HGET', qk(q, 'b'), id)
	if not v then return nil end
	local st, prio, recv, size, due, first, sent = struct.unpack(MFMT, v)
	return {state = st, prio = prio, recv = recv, due = due,
		first = first, size = size, sent = sent, id = id, raw = v}
end

-- message id of q if its state is one of the bits of states; nil if not
local function meta_in(q, id, states)
	local m = meta_get(q, id)
	if m and math.floor(tonumber(states) / m.state) % 2 == 1 then
		return m
	end
end

-- the body record of m (as read by meta_get, or given to it)
local function record(m)
	if not m.rec then m.rec = string.sub(m.raw, MLEN + 1) end
	return m.rec
end

local function meta_put(q, m)
	redis.call('HSET', qk(q, 'b'), m.id, struct.pack(MFMT, m.state,
		m.prio, m.recv, m.size, m.due, m.first, m.sent) .. record(m))
end

local function meta_list(m)
	return {m.id, m.state, S(m.prio), m.recv, S(m.size), S(m.sent),
		S(m.due), S(m.first)}
end

-- ids as 8 bytes (big-endian: byte order is id order) and back
local B62V = {}
for i = 1, 62 do B62V[B62:byte(i)] = i - 1 end

local function id_bin(t)
	local ms, c = 0, 0
	for i = 1, #t do
		local x = c * 62 + B62V[t:byte(i)]
		local carry = math.floor(x / TWO21)
		c = x - carry * TWO21
		ms = ms * 62 + carry
	end
	local top = math.floor(ms / 2048)
	return struct.pack('>I4I4', top, (ms - top * 2048) * TWO21 + c)
end

local function id_text(b)
	local top, low = struct.unpack('>I4I4', b)
	local c = low % TWO21
	return b62(top * 2048 + (low - c) / TWO21, c)
end

-- the VISIBLE set's member of m: 12 bytes, so that Redis keeps it in its
-- smallest allocation (16 B); priority first, then id, in byte order
local function rmember(m)
	return struct.pack('>I4', 2147483647 - m.prio) .. id_bin(m.id)
end

-- the id of a VISIBLE set's member
local function rid(member) return id_text(string.sub(member, 5)) end

-- a member as the daemon sees it, '%08x' (0x7fffffff - prio) .. id, and
-- back (list cursors)
local function rtext(member)
	return string.format('%08x', struct.unpack('>I4', member)) ..
		rid(member)
end

local function rfrom_text(t)
	return struct.pack('>I4', tonumber(string.sub(t, 1, 8), 16)) ..
		id_bin(string.sub(t, 9))
end

-- calls fn(first member) for each priority's run in q's VISIBLE set
local function ready_runs(q, fn)
	local from = '-'
	while true do
		local h = redis.call('ZRANGE', qk(q, 'r'), from, '+', 'BYLEX',
				     'LIMIT', 0, 1)
		if #h == 0 then return end
		fn(h[1])
		from = '(' .. string.sub(h[1], 1, 4) .. '\255'
	end
end

-- the oldest message (by sent time) of q's VISIBLE (and, unless
-- visible_only, DELAYED and LEASED) messages: as the RocksDB store does,
-- the oldest of the heads of the id-ordered runs (ids follow sent times)
local function oldest(q, visible_only)
	local best
	local function consider(id)
		local m = meta_get(q, id)
		if m and (not best or m.sent < best.sent) then best = m end
	end
	ready_runs(q, function(member) consider(rid(member)) end)
	if not visible_only then
		for _, t in ipairs({'d', 'l'}) do
			local h = redis.call('ZRANGE', qk(q, t), 0, 0)
			if #h > 0 then consider(h[1]) end
		end
	end
	return best
end

-- family f's earliest due into the namespace's index of families. On one
-- primary at once. In a Cluster (the daemon's second call) with a version
-- kept in {P:F}:pub, and only when it is earlier than the one published
-- last (a later one costs one empty tick), unless force (ftick, the
-- sweep: F's true due, whatever it is; but not when seen, the value the
-- namespace's index holds, is it already); returns the due ('' none)
local function fdue_publish(f, force, seen)
	local t = redis.call('ZRANGE', ftag(f) .. ':timers', 0, 0, 'WITHSCORES')
	local due = #t > 0 and t[2] or ''
	if not CLUSTER then
		ns('t0', f, due)
		return due
	end
	local key = ftag(f) .. ':pub'
	local p = redis.call('HMGET', key, 'due', 'ver')
	local was = p[1] or ''
	if force and seen == due and was == due then force = false end
	if force or (due ~= '' and (was == '' or
				    tonumber(due) < tonumber(was))) then
		local ver = S((tonumber(p[2]) or 0) + 1)
		redis.call('HSET', key, 'due', due, 'ver', ver)
		ns('t', f, due, ver)
	end
	return due
end

-- the queue's earliest due time, kept in {P:F}:timers
local function qdue_update(q, s)
	local due
	local t = redis.call('ZRANGE', qk(q, 't'), 0, 0, 'WITHSCORES')
	if #t > 0 then due = tonumber(t[2]) end
	if s and s.ret > 0 then
		local o = oldest(q)
		if o then
			local r = o.sent + s.ret
			if not due or r < due then due = r end
		end
	end
	-- the family's index, and the namespace's, only when it changed; the
	-- hosts' timers are told of an earlier due
	local key = ft(q) .. ':timers'
	local was = redis.call('ZSCORE', key, q)
	if due and (not was or tonumber(was) ~= due) then
		redis.call('ZADD', key, S(due), q)
		fdue_publish(fam(q))
		if not was or due < tonumber(was) then publish('t', q, S(due)) end
	elseif not due and was then
		redis.call('ZREM', key, q)
		fdue_publish(fam(q))
	end
	return due
end

-- q gained a due that may be earlier than its family's index has (a
-- delay, a lease, the retention of a first message): lowers the index to
-- it, and tells the hosts' timers. The hot paths keep the index early or
-- exact, never late: a due that grew later (an ack, a release, a delete)
-- leaves it as it was, and the hosts then tick once for nothing; that
-- tick's promote writes the true due (qdue_update). Two calls instead of
-- five or more on each push, lease and ack.
local function qdue_lower(q, due)
	local key = ft(q) .. ':timers'
	local was = redis.call('ZSCORE', key, q)
	if was and tonumber(was) <= due then return end
	redis.call('ZADD', key, S(due), q)
	fdue_publish(fam(q))
	publish('t', q, S(due))
end

-- takes message m out of the index of its state
local function unplace(q, m)
	if m.state == VIS then
		redis.call('ZREM', qk(q, 'r'), rmember(m))
	elseif m.state == DEL then
		redis.call('ZREM', qk(q, 'd'), m.id)
		redis.call('ZREM', qk(q, 't'), m.id)
	elseif m.state == LEA then
		redis.call('ZREM', qk(q, 'l'), m.id)
		redis.call('ZREM', qk(q, 't'), m.id)
	else
		redis.call('ZREM', qk(q, 'k'), m.id)
	end
end

-- puts message m into the index of its state (and writes its meta)
local function place(q, m)
	if m.state == VIS then
		redis.call('ZADD', qk(q, 'r'), 0, rmember(m))
		woke(q)
	elseif m.state == DEL then
		redis.call('ZADD', qk(q, 'd'), 0, m.id)
		redis.call('ZADD', qk(q, 't'), S(m.due), m.id)
	elseif m.state == LEA then
		redis.call('ZADD', qk(q, 'l'), 0, m.id)
		redis.call('ZADD', qk(q, 't'), S(m.due), m.id)
	else
		redis.call('ZADD', qk(q, 'k'), 0, m.id)
	end
	meta_put(q, m)
end

local function count(q, field, n)
	if n ~= 0 then redis.call('HINCRBY', qk(q, 'c'), field, n) end
end

-- deletes message m (already out of its state index) with its body
local function remove(q, m, counter)
	redis.call('HDEL', qk(q, 'b'), m.id)
	count(q, 'bytes', -m.size)
	if counter then count(q, counter, 1) end
end

-- moves message m (out of q's indexes) into dst, VISIBLE now
local function move_into(q, m, dst)
	record(m)
	redis.call('HDEL', qk(q, 'b'), m.id)
	count(q, 'bytes', -m.size)
	m.state = VIS
	m.due = NOW
	place(dst, m)
	count(dst, 'bytes', m.size)
end

-- makes queue q: settings from the hash dflt, then owner, mode, ctime and
-- a new incarnation; registered in its family and the namespace
local function queue_make(q, dflt, uid, gid, mode, ctime)
	local f = ft(q)
	local gen = redis.call('INCR', f .. ':gen')
	local d = redis.call('HGETALL', dflt)
	if #d > 0 then redis.call('HSET', qk(q, 's'), unpack(d)) end
	redis.call('HSET', qk(q, 's'), 'uid', uid, 'gid', gid, 'mode', mode,
		   'ctime', ctime, 'gen', S(gen))
	redis.call('ZADD', f .. ':queues', 0, q)
	ns('f+', fam(q))
	ns('q+', q)
end

-- the dead-letter queue of q (created with q's owner and mode if missing)
local function dlq_of(q, s)
	local name = s.dl ~= '' and s.dl or (q .. '.dead')
	if name == q then return nil end
	-- in a Cluster another family's keys are out of reach (a setting
	-- older than the check of config): the message stays
	if CLUSTER and fam(name) ~= fam(q) then return nil end
	local d = settings(name)
	if d then return name, d end
	if #name > 200 then return nil end
	queue_make(name, ft(q) .. ':defaults', s.uid, s.gid, s.mode, S(NOW))
	return name, settings(name)
end

-- dead-letters m (out of q's indexes); false if it cannot go
local function dead_letter(q, s, m)
	local name, d = dlq_of(q, s)
	if not name or room(name, d, 1) ~= 0 then
		redis.log(redis.LOG_WARNING, 'spool: queue ' .. q ..
			  ': no dead-letter queue; message stays')
		return false
	end
	move_into(q, m, name)
	qdue_update(name, d)
	count(q, 'dead_total', 1)
	return true
end

-- deletes the messages of q sent at least s.ret ms ago: the expired head
-- of each id-ordered run (DELAYED, LEASED, each priority's VISIBLE run)
local function retention(q, s)
	local function run(t, lo, hi)
		-- a few first: usually the head is not due, and a lease or
		-- stats call must not read a thousand members for nothing
		local n = 8
		while true do
			local h = redis.call('ZRANGE', qk(q, t), lo, hi, 'BYLEX',
					     'LIMIT', 0, n)
			for _, member in ipairs(h) do
				local m = meta_get(q, t == 'r' and
						   rid(member) or member)
				if m.sent + s.ret > NOW then return end
				unplace(q, m)
				remove(q, m, 'deleted_total')
			end
			if #h < n then return end
			n = STEP
		end
	end
	run('d', '-', '+')
	run('l', '-', '+')
	local prios = {}
	ready_runs(q, function(member)
		prios[#prios + 1] = string.sub(member, 1, 4)
	end)
	for _, p in ipairs(prios) do run('r', '[' .. p, '(' .. p .. '\255') end
end

-- due delays and leases, and retention, of q at NOW; returns q's earliest
-- due, made exact in the index (qdue_update). lazy: when nothing came due
-- and q has no retention, the index is left as it is (early or exact) and
-- nil returned
local function promote(q, s, lazy)
	local expired, any = 0, false
	while true do
		local due = redis.call('ZRANGE', qk(q, 't'), '-inf', S(NOW),
				       'BYSCORE', 'LIMIT', 0, STEP)
		if #due > 0 then any = true end
		for _, id in ipairs(due) do
			local m = meta_get(q, id)
			unplace(q, m)
			local done = false
			if m.state == LEA then
				expired = expired + 1
				if s.max_recv > 0 and m.recv >= s.max_recv then
					done = dead_letter(q, s, m)
				end
			end
			if not done then
				m.state = VIS
				place(q, m)
			end
		end
		if #due < STEP then break end
	end
	count(q, 'expired_total', expired)
	if s.ret > 0 then retention(q, s) end
	if lazy and not any and s.ret == 0 then return nil end
	return qdue_update(q, s)
end

-- ------------------------------------------------------------- queues

local function f_version(K, A)
	return VERSION
end

-- qcreate(name, uid, gid, mode, ctime, default field, value, ...): the
-- defaults are kept for the family (the dead-letter queues promote makes)
local function f_qcreate(K, A)
	start(K, A)
	local q = A[3]
	if redis.call('EXISTS', qk(q, 's')) == 1 then
		-- the name again: repairs a create cut before its second call
		if CLUSTER then ns('q+', q) end
		return reply(EEXIST)
	end
	local args = {}
	for i = 8, #A do args[#args + 1] = A[i] end
	if #args > 0 then
		redis.call('HSET', ft(q) .. ':defaults', unpack(args))
	end
	queue_make(q, ft(q) .. ':defaults', A[4], A[5], A[6], A[7])
	return reply(0)
end

-- the messages of q in one of the states (bits) removed: their count
local function purge_states(q, states, counter)
	local n = 0
	for bit, t in pairs({[VIS] = 'r', [DEL] = 'd', [LEA] = 'l', [COR] = 'k'}) do
		local all = {}
		if math.floor(states / bit) % 2 == 1 then
			all = redis.call('ZRANGE', qk(q, t), 0, -1)
		end
		for _, member in ipairs(all) do
			local id = t == 'r' and rid(member) or member
			local m = meta_get(q, id)
			unplace(q, m)
			remove(q, m, counter)
			n = n + 1
		end
	end
	return n
end

-- qdelete(name, all): all = 1 also deletes every message in it
local function f_qdelete(K, A)
	start(K, A)
	local q = A[3]
	if redis.call('EXISTS', qk(q, 's')) == 0 then return reply(ENOENT) end
	if A[4] == '1' then purge_states(q, VIS + DEL + LEA + COR,
					 'deleted_total') end
	if depth(q) > 0 then return reply(ENOTEMPTY) end
	ns('q-', q)
	redis.call('ZREM', ft(q) .. ':queues', q)
	redis.call('ZREM', ft(q) .. ':timers', q)
	fdue_publish(fam(q))
	for _, t in ipairs({'s', 'r', 'd', 'l', 'k', 't', 'b', 'c', 'u',
			     'v', 'm'}) do
		redis.call('UNLINK', qk(q, t))
	end
	publish('x', q)
	return reply(0)
end

-- qget(name, gen): {0, {}, gen, settings hash as a flat list}
local function f_qget(K, A)
	start(K, A)
	local s = live(A[3], A[4])
	if not s then return reply(GONE) end
	return reply(0, S(s.gen), redis.call('HGETALL', qk(A[3], 's')))
end

-- sets queue value key of q to val (set == '1') or removes it
local function meta_write(q, key, set, val)
	if set == '1' then
		redis.call('HSET', qk(q, 'm'), key, val)
	else
		redis.call('HDEL', qk(q, 'm'), key)
	end
end

-- qset(name, gen, mkey, mset, mval, field, value, ...): owner, mode,
-- ctime, settings, and the queue value mkey (none if '') as meta_set
local function f_qset(K, A)
	start(K, A)
	local q = A[3]
	local s = live(q, A[4])
	if not s then return reply(GONE) end
	local args = {}
	for i = 8, #A do args[#args + 1] = A[i] end
	local paused = s.paused
	if #args > 0 then redis.call('HSET', qk(q, 's'), unpack(args)) end
	if A[5] ~= '' then meta_write(q, A[5], A[6], A[7]) end
	local n = settings(q)
	publish('c', q)
	if paused ~= 0 and n.paused == 0 and
	   redis.call('ZCARD', qk(q, 'r')) > 0 then
		woke(q)
	end
	qdue_update(q, n)
	return reply(0)
end

-- meta_get(name, gen, key), meta_set(name, gen, key, 1 value | 0)
local function f_meta_get(K, A)
	start(K, A)
	if not live(A[3], A[4]) then return reply(GONE) end
	local v = redis.call('HGET', qk(A[3], 'm'), A[5])
	if not v then return reply(ENODATA) end
	return reply(0, v)
end

local function f_meta_set(K, A)
	start(K, A)
	if not live(A[3], A[4]) then return reply(GONE) end
	meta_write(A[3], A[5], A[6], A[7])
	return reply(0)
end

local function f_qnext(K, A)
	start(K, A)
	local from = A[3] == '' and '-' or ('(' .. A[3])
	local r = redis.call('ZRANGE', NS .. ':queues', from, '+', 'BYLEX',
			     'LIMIT', 0, 1)
	if #r == 0 then return reply(ENOENT) end
	return reply(0, r[1])
end

local function f_qcount(K, A)
	start(K, A)
	return reply(0, redis.call('ZCARD', NS .. ':queues'))
end

-- ------------------------------------------------------------ pushing

-- room(name, gen, n): would q (or each fanout queue) take n more
local function f_room(K, A)
	start(K, A)
	local q = A[3]
	local s = live(q, A[4])
	if not s then return reply(GONE) end
	local n = tonumber(A[5])
	if s.fanout == '' then return reply(room(q, s, n)) end
	for t in string.gmatch(s.fanout, '[^,]+') do
		if CLUSTER and fam(t) ~= fam(q) then return reply(EINVAL) end
		local d = settings(t)
		if not d then return reply(ENOENT) end
		local rc = room(t, d, n)
		if rc ~= 0 then return reply(rc) end
	end
	return reply(0)
end

-- push(name, gen, n, then per message: record, size, has_prio, prio,
-- has_delay, delay, dedup key hex or ''): {0, woken, first id or ''}
local function f_push(K, A)
	start(K, A)
	local q = A[3]
	local s = live(q, A[4])
	if not s then return reply(GONE) end
	local n = tonumber(A[5])
	local msgs = {}
	for i = 0, n - 1 do
		local b = 6 + i * 7
		msgs[#msgs + 1] = {rec = A[b], size = tonumber(A[b + 1]),
			has_prio = A[b + 2] == '1', prio = tonumber(A[b + 3]),
			has_delay = A[b + 4] == '1', delay = tonumber(A[b + 5]),
			key = A[b + 6]}
	end
	-- destinations: the fanout queues, or q
	local dests = {}
	if s.fanout == '' then
		dests[1] = {name = q, s = s}
	else
		for t in string.gmatch(s.fanout, '[^,]+') do
			if CLUSTER and fam(t) ~= fam(q) then
				return reply(EINVAL)
			end
			local d = settings(t)
			if not d then return reply(ENOENT) end
			dests[#dests + 1] = {name = t, s = d}
		end
	end
	for _, m in ipairs(msgs) do
		if m.size > s.max_size then return reply(EFBIG) end
	end
	-- dedup: keep the pushes not seen within the window
	-- (dup[i]: the kept message of a dropped push i, as its id, or as
	-- the push of this call that has its key)
	local keep, seen, dup = {}, {}, {}
	local dedup = redis.call('ZRANGE', qk(q, 'u'), '-inf', S(NOW),
				 'BYSCORE', 'LIMIT', 0, 64)
	for i, m in ipairs(msgs) do
		m.index = i
		if m.key == '' then
			keep[#keep + 1] = m
		elseif seen[m.key] then
			dup[i] = seen[m.key]
		else
			local e = redis.call('ZSCORE', qk(q, 'u'), m.key)
			if not e or tonumber(e) <= NOW then
				keep[#keep + 1] = m
				seen[m.key] = m
			else
				dup[i] = redis.call('HGET', qk(q, 'v'), m.key) or ''
			end
		end
	end
	for _, d in ipairs(dests) do
		local rc = room(d.name, d.s, #keep)
		if rc ~= 0 then return reply(rc) end
		if d.name ~= q then
			for _, m in ipairs(keep) do
				if m.size > d.s.max_size then return reply(EFBIG) end
			end
		end
	end
	-- from here on nothing fails
	if #dedup > 0 then
		redis.call('ZREM', qk(q, 'u'), unpack(dedup))
		redis.call('HDEL', qk(q, 'v'), unpack(dedup))
	end
	for key, _ in pairs(seen) do
		redis.call('ZADD', qk(q, 'u'), S(NOW + s.dwin), key)
	end
	count(q, 'deduped_total', n - #keep)
	local ids = {}
	for i = 1, n do
		ids[i] = type(dup[i]) == 'string' and dup[i] or ''
	end
	if #keep == 0 then return reply(0, '', ids) end
	local ms, c = ids_take(q, #keep * #dests)
	local first
	for di, d in ipairs(dests) do
		local bytes, low = 0
		for k, p in ipairs(keep) do
			local ims, ic = id_add(ms, c, (di - 1) * #keep + (k - 1))
			local id = b62(ims, ic)
			first = first or id
			if di == 1 then
				ids[p.index] = id
				p.id = id
			end
			local delay = p.has_delay and p.delay or d.s.delay
			local m = {id = id, prio = p.has_prio and p.prio or d.s.prio,
				sent = NOW, size = p.size, recv = 0, first = 0,
				state = delay > 0 and DEL or VIS, due = NOW + delay,
				rec = p.rec}
			place(d.name, m)
			bytes = bytes + p.size
			if m.state == DEL and (not low or m.due < low) then
				low = m.due
			end
		end
		count(d.name, 'pushed_total', #keep)
		count(d.name, 'bytes', bytes)
		if d.s.ret > 0 and (not low or NOW + d.s.ret < low) then
			low = NOW + d.s.ret
		end
		if low then qdue_lower(d.name, low) end
	end
	-- a dedup key names the message kept for it
	for key, p in pairs(seen) do
		redis.call('HSET', qk(q, 'v'), key, p.id)
	end
	for i, d in pairs(dup) do
		if type(d) == 'table' then ids[i] = d.id end
	end
	return reply(0, first, ids)
end

-- ------------------------------------------------------------ leasing

local function lease_msg(q, s, m, vt)
	m.state = LEA
	m.recv = m.recv + 1
	m.due = NOW + (vt or s.vt)
	if m.first == 0 then m.first = NOW end
	place(q, m)
end

-- lease(name, gen, lease|pop, vt ms or -1 for the queue's):
-- {0, woken, meta..., record}
local function f_lease(K, A)
	start(K, A)
	local q = A[3]
	local s = live(q, A[4])
	if not s then return reply(GONE) end
	promote(q, s, true)
	if s.paused ~= 0 then return reply(EAGAIN) end
	while true do
		local head = redis.call('ZRANGE', qk(q, 'r'), 0, 0)
		if #head == 0 then return reply(EAGAIN) end
		local m = meta_get(q, rid(head[1]))
		unplace(q, m)
		if s.max_recv > 0 and m.recv >= s.max_recv and
		   dead_letter(q, s, m) then
			-- next
		else
			local rec = record(m)
			if A[5] == 'pop' then
				remove(q, m, 'acked_total')
			else
				local vt = tonumber(A[6])
				lease_msg(q, s, m, vt >= 0 and vt or nil)
				-- vt 0: the lease runs out at once, through the
				-- expiry path, as on RocksDB (expired_total, and
				-- the dead-letter queue at max_receives)
				if m.due <= NOW then
					promote(q, s)
				else
					qdue_lower(q, m.due)
				end
			end
			return reply(0, meta_list(m), rec)
		end
	end
end

-- lease_id(name, gen, id)
local function f_lease_id(K, A)
	start(K, A)
	local q = A[3]
	local s = live(q, A[4])
	if not s then return reply(GONE) end
	local m = meta_get(q, A[5])
	if not m or m.state ~= VIS then return reply(ENOENT) end
	if s.paused ~= 0 then return reply(EAGAIN) end
	unplace(q, m)
	lease_msg(q, s, m)
	qdue_update(q, s)
	return reply(0, meta_list(m))
end

-- put back a popped message whose record failed its checksum, CORRUPT
-- restore(name, gen, id, state, prio, recv, size, sent, due, first, record)
local function f_restore(K, A)
	start(K, A)
	local q = A[3]
	if not live(q, A[4]) then return reply(GONE) end
	local m = {id = A[5], state = COR, prio = tonumber(A[7]),
		recv = tonumber(A[8]), size = tonumber(A[9]),
		sent = tonumber(A[10]), due = tonumber(A[11]),
		first = tonumber(A[12]), rec = A[13]}
	place(q, m)
	count(q, 'bytes', m.size)
	count(q, 'acked_total', -1)
	return reply(0)
end

-- is m ackable by the receive r (0: any)?
local function ackable(m, r)
	return m and (m.state == LEA or (m.state == VIS and m.recv > 0)) and
	       (r == 0 or m.recv == r)
end

-- ack(name, gen, id, receives: 0 any, else that receive only)
local function f_ack(K, A)
	start(K, A)
	local q = A[3]
	local s = live(q, A[4])
	if not s then return reply(GONE) end
	local m = meta_get(q, A[5])
	if not ackable(m, tonumber(A[6])) then return reply(ENOENT) end
	unplace(q, m)
	remove(q, m, 'acked_total')
	return reply(0)         -- the index stays early (qdue_lower)
end

-- ack_batch(name, gen, id, receives, id, receives, ...): {0 or ENOENT each}
local function f_ack_batch(K, A)
	start(K, A)
	local q = A[3]
	local s = live(q, A[4])
	if not s then return reply(GONE) end
	local res = {}
	for i = 5, #A - 1, 2 do
		local m = meta_get(q, A[i])
		if ackable(m, tonumber(A[i + 1])) then
			unplace(q, m)
			remove(q, m, 'acked_total')
			res[#res + 1] = 0
		else
			res[#res + 1] = ENOENT
		end
	end
	return reply(0, res)
end

-- release(name, gen, id, uncount)
local function f_release(K, A)
	start(K, A)
	local q = A[3]
	local s = live(q, A[4])
	if not s then return reply(GONE) end
	local m = meta_get(q, A[5])
	if not m or m.state ~= LEA then return reply(ENOENT) end
	unplace(q, m)
	m.state = VIS
	m.due = NOW
	if A[6] == '1' and m.recv > 0 then m.recv = m.recv - 1 end
	place(q, m)
	return reply(0)         -- the index stays early (qdue_lower)
end

-- extend(name, gen, id, receives (0 any), expiry or -1)
local function f_extend(K, A)
	start(K, A)
	local q = A[3]
	local s = live(q, A[4])
	if not s then return reply(GONE) end
	local m = meta_get(q, A[5])
	local r = tonumber(A[6])
	if not m or m.state ~= LEA or (r ~= 0 and m.recv ~= r) then
		return reply(ENOENT)
	end
	local e = tonumber(A[7])
	if e < 0 then e = NOW + s.vt end
	unplace(q, m)
	if e <= NOW then
		m.state = VIS
		m.due = NOW
	else
		m.due = e
		publish('t', q, S(e))
	end
	place(q, m)
	qdue_update(q, s)
	return reply(0)
end

-- delete(name, gen, id, states)
local function f_delete(K, A)
	start(K, A)
	local q = A[3]
	local s = live(q, A[4])
	if not s then return reply(GONE) end
	local m = meta_in(q, A[5], A[6])
	if not m then return reply(ENOENT) end
	unplace(q, m)
	remove(q, m, 'deleted_total')
	return reply(0)
end

-- move(name, gen, id, states, dst, dstgen)
local function f_move(K, A)
	start(K, A)
	local q, dst = A[3], A[7]
	if CLUSTER and fam(q) ~= fam(dst) then return reply(EXDEV) end
	local s = live(q, A[4])
	if not s then return reply(GONE) end
	local d = live(dst, A[8])
	if not d then return reply(ENOENT) end
	local m = meta_in(q, A[5], A[6])
	if not m then return reply(ENOENT) end
	if q == dst then
		unplace(q, m)
		m.state = VIS
		m.due = NOW
		place(q, m)
		qdue_update(q, s)
		return reply(0)
	end
	local rc = room(dst, d, 1)
	if rc ~= 0 then return reply(rc) end
	unplace(q, m)
	move_into(q, m, dst)
	qdue_update(q, s)
	qdue_update(dst, d)
	return reply(0)
end

-- move_all(name, gen, dst, dstgen, max): one step of up to max (<= 1000)
local function f_move_all(K, A)
	start(K, A)
	local q, dst = A[3], A[5]
	if CLUSTER and fam(q) ~= fam(dst) then return reply(EXDEV) end
	local s = live(q, A[4])
	if not s then return reply(GONE) end
	local d = live(dst, A[6])
	if not d then return reply(ENOENT) end
	local want = tonumber(A[7])
	if d.max_depth > 0 then
		local free = d.max_depth - depth(dst)
		if free < want then want = free end
		if want <= 0 then
			if redis.call('ZCARD', qk(q, 'r')) > 0 then
				return reply(EDQUOT, 0)
			end
			return reply(0, 0)
		end
	end
	local head = redis.call('ZRANGE', qk(q, 'r'), 0, want - 1)
	for _, member in ipairs(head) do
		local m = meta_get(q, rid(member))
		unplace(q, m)
		move_into(q, m, dst)
	end
	qdue_update(q, s)
	qdue_update(dst, d)
	return reply(0, #head)
end

-- purge(name, gen, states): every message in one of the states
local function f_purge(K, A)
	start(K, A)
	local q = A[3]
	local s = live(q, A[4])
	if not s then return reply(GONE) end
	local n = purge_states(q, tonumber(A[5]), 'deleted_total')
	qdue_update(q, s)
	return reply(0, n)
end

-- corrupt(name, gen, id): sets a message aside
local function f_corrupt(K, A)
	start(K, A)
	local q = A[3]
	local s = live(q, A[4])
	if not s then return reply(GONE) end
	local m = meta_get(q, A[5])
	if not m or m.state == COR or m.state == MOV then
		return reply(ENOENT)
	end
	unplace(q, m)
	m.state = COR
	place(q, m)
	qdue_update(q, s)
	return reply(0)
end

-- rename(name, gen, id, record): the message's new body record (its name
-- changed; the daemon built it from the old one)
local function f_rename(K, A)
	start(K, A)
	local q = A[3]
	if not live(q, A[4]) then return reply(GONE) end
	local m = meta_get(q, A[5])
	if not m or m.state == COR or m.state == MOV then
		return reply(ENOENT)
	end
	m.rec = A[6]
	meta_put(q, m)
	return reply(0)
end

-- ------------------------------------------------------------ reading

-- stat(name, gen, id)
local function f_stat(K, A)
	start(K, A)
	local q = A[3]
	if not live(q, A[4]) then return reply(GONE) end
	local m = meta_get(q, A[5])
	if not m or m.state == MOV then return reply(ENOENT) end
	return reply(0, meta_list(m))
end

-- record(name, gen, id)
local function f_record(K, A)
	start(K, A)
	local q = A[3]
	if not live(q, A[4]) then return reply(GONE) end
	local m = meta_get(q, A[5])
	if not m or m.state == MOV then return reply(ENOENT) end
	if m.state == COR then return reply(EIO) end
	return reply(0, record(m))
end

-- list(name, gen, state, from member or '', max)
local function f_list(K, A)
	start(K, A)
	local q = A[3]
	if not live(q, A[4]) then return reply(GONE) end
	local t = ({['1'] = 'r', ['2'] = 'd', ['4'] = 'l', ['8'] = 'k'})[A[5]]
	local from = A[6]
	if t == 'r' and from ~= '' then from = rfrom_text(from) end
	from = from == '' and '-' or ('(' .. from)
	local l = redis.call('ZRANGE', qk(q, t), from, '+', 'BYLEX', 'LIMIT', 0,
			     tonumber(A[7]))
	if t == 'r' then
		for i, member in ipairs(l) do l[i] = rtext(member) end
	end
	return reply(0, l)
end

-- stats(name, gen): counts, counters, the oldest visible sent time
local function f_stats(K, A)
	start(K, A)
	local q = A[3]
	if not live(q, A[4]) then return reply(GONE) end
	local c = redis.call('HGETALL', qk(q, 'c'))
	local o = oldest(q, true)
	return reply(0, {redis.call('ZCARD', qk(q, 'r')),
		redis.call('ZCARD', qk(q, 'd')), redis.call('ZCARD', qk(q, 'l')),
		redis.call('ZCARD', qk(q, 'k'))}, c, o and S(o.sent) or '')
end

-- ------------------------------------- the outbox move (a Cluster's)

-- the outbox entry of id in family tag t: {q, q2, gen2, at, n}; n
-- names this transfer ({P:F}:xn), so that a message moved away, back and
-- away again is a new transfer each time for the target's {P:F}:in
local function xget(t, id)
	local v = redis.call('HGET', t .. ':x', id)
	if not v then return nil end
	local q, q2, gen2, at, n = string.match(v,
		'^(%S+) (%S+) (%S*) (%S+) (%S+)$')
	return {q = q, q2 = q2, gen2 = gen2, at = tonumber(at), n = n}
end

-- what the daemon needs to finish a transfer: {q, q2, gen2, meta, record,
-- transfer number}
local function xentry(e, m)
	return {e.q, e.q2, e.gen2, meta_list(m), record(m), e.n}
end

-- the entries of family f's outbox older than XAGE (their transfer was
-- cut: the daemon replays them); the outbox's timer again if any is left
local function xstale(f)
	local t = ftag(f)
	local all = redis.call('HGETALL', t .. ':x')
	local out = {}
	for i = 1, #all, 2 do
		local e = xget(t, all[i])
		local m = e and meta_get(e.q, all[i])
		if not m or m.state ~= MOV then
			redis.call('HDEL', t .. ':x', all[i])
		elseif e.at + XAGE <= NOW and #out < 100 then
			out[#out + 1] = xentry(e, m)
		end
	end
	if redis.call('HLEN', t .. ':x') > 0 then
		redis.call('ZADD', t .. ':timers', S(NOW + XAGE), XM)
	else
		redis.call('ZREM', t .. ':timers', XM)
	end
	return out
end

-- xout(name, gen, id, states, dst, dstgen): step 1 of a move to a queue
-- of another family, on this one's slot: the message leaves q's indexes
-- (MOVING), the outbox records it. {0, woken, nsfx, entry (xentry)}
local function f_xout(K, A)
	start(K, A)
	local q = A[3]
	local s = live(q, A[4])
	if not s then return reply(GONE) end
	local m = meta_in(q, A[5], A[6])
	if not m then return reply(ENOENT) end
	unplace(q, m)
	m.state = MOV
	meta_put(q, m)
	count(q, 'bytes', -m.size)
	local t = ft(q)
	local e = {q = q, q2 = A[7], gen2 = A[8], at = NOW,
		n = S(redis.call('INCR', t .. ':xn'))}
	redis.call('HSET', t .. ':x', m.id, q .. ' ' .. e.q2 .. ' ' .. e.gen2 ..
		   ' ' .. S(NOW) .. ' ' .. e.n)
	if not redis.call('ZSCORE', t .. ':timers', XM) then
		redis.call('ZADD', t .. ':timers', S(NOW + XAGE), XM)
	end
	qdue_update(q, s)
	fdue_publish(fam(q))
	return reply(0, xentry(e, m))
end

-- an id's (ms, c)
local function id_parts(t)
	local top, low = struct.unpack('>I4I4', id_bin(t))
	local c = low % TWO21
	return top * 2048 + (low - c) / TWO21, c
end

-- xin(name, gen, transfer (its family ':' its number), id, prio, recv,
-- size, sent, first, record): step 2, on the destination's slot: the
-- message goes in VISIBLE, with its id unless this family has it (then a
-- new one); done once per transfer: a replay returns the id it got.
-- {0, ..., id}
local function f_xin(K, A)
	start(K, A)
	local q = A[3]
	local t = ft(q)
	local key = A[5] .. ':' .. A[6]
	local done = redis.call('HGET', t .. ':in', key)
	if done then return reply(0, done) end
	local s = live(q, A[4])
	if not s then return reply(ENOENT) end
	local rc = room(q, s, 1)
	if rc ~= 0 then return reply(rc) end
	local id = A[6]
	for _, o in ipairs(redis.call('ZRANGE', t .. ':queues', 0, -1)) do
		if redis.call('HEXISTS', qk(o, 'b'), id) == 1 then
			id = nil
			break
		end
	end
	if id then      -- the family's ids stay above it
		local ms, c = id_parts(id)
		local sq = redis.call('HMGET', t .. ':seq', 'ms', 'c')
		local sms, sc = tonumber(sq[1]), tonumber(sq[2])
		if not sms or ms > sms or (ms == sms and c > sc) then
			redis.call('HSET', t .. ':seq', 'ms', S(ms), 'c', S(c))
		end
	else
		id = b62(ids_take(q, 1))
	end
	local m = {id = id, state = VIS, prio = tonumber(A[7]),
		recv = tonumber(A[8]), size = tonumber(A[9]),
		sent = tonumber(A[10]), first = tonumber(A[11]), due = NOW,
		rec = A[12]}
	place(q, m)
	count(q, 'bytes', m.size)
	redis.call('HSET', t .. ':in', key, id)
	redis.call('ZADD', t .. ':inx', S(NOW), key)
	local old = redis.call('ZRANGE', t .. ':inx', '-inf', S(NOW - INAGE),
			       'BYSCORE', 'LIMIT', 0, 100)
	for _, k in ipairs(old) do
		redis.call('HDEL', t .. ':in', k)
		redis.call('ZREM', t .. ':inx', k)
	end
	qdue_update(q, s)
	return reply(0, id)
end

-- ends the outbox entry of id (in name's family): done (xdone: the field
-- goes) or refused (xback: the message comes back VISIBLE)
local function xend(K, A, back)
	start(K, A)
	local t = ft(A[3])
	local e = xget(t, A[4])
	if not e then return reply(0) end
	local m = meta_get(e.q, A[4])
	local s = settings(e.q)
	if m and m.state == MOV then
		if back and s then
			m.state = VIS
			m.due = NOW
			place(e.q, m)
			count(e.q, 'bytes', m.size)
		else
			redis.call('HDEL', qk(e.q, 'b'), A[4])
		end
	end
	redis.call('HDEL', t .. ':x', A[4])
	if redis.call('HLEN', t .. ':x') == 0 then
		redis.call('ZREM', t .. ':timers', XM)
	end
	if s then qdue_update(e.q, s) end
	return reply(0)
end

-- xdone(name, id), xback(name, id)
local function f_xdone(K, A) return xend(K, A, false) end
local function f_xback(K, A) return xend(K, A, true) end

-- makes the head of family f's index exact: the hot paths may leave an
-- entry early (qdue_lower), and a tick answers the true next due. Each
-- pass makes one queue's entry exact, until the earliest is one that is
-- (TICKED: the queues this call's ftick promoted, whose entries are exact
-- or put off a second on purpose, and the ones fhead made exact already)
local function fhead(f)
	local key = ftag(f) .. ':timers'
	while true do
		local h = redis.call('ZRANGE', key, 0, 0)
		if #h == 0 or h[1] == XM or TICKED[h[1]] then return end
		TICKED[h[1]] = true
		local s = settings(h[1])
		if s then
			qdue_update(h[1], s)
		else
			redis.call('ZREM', key, h[1])
		end
	end
end

-- the due timers of family f's queues (and its outbox's stale entries):
-- its earliest due, and the stale entries
local function ftick(f, seen)
	local key = ftag(f) .. ':timers'
	local stale = {}
	while true do
		local due = redis.call('ZRANGE', key, '-inf', S(NOW), 'BYSCORE',
				       'LIMIT', 0, 100)
		for _, q in ipairs(due) do
			TICKED[q] = true
			local s = q ~= XM and settings(q)
			if q == XM then
				stale = xstale(f)
			elseif s then
				local d = promote(q, s)
				if d and d <= NOW then
					-- what could not move (a full DLQ) waits a second
					redis.call('ZADD', key, S(NOW + 1000), q)
				end
			else
				redis.call('ZREM', key, q)
			end
		end
		if #due < 100 then break end
	end
	fhead(f)
	return fdue_publish(f, true, seen), stale
end

-- tick(): runs every family's due timers; {0, woken, nsfx, next due or
-- ''}. In a Cluster it runs none (other slots): {0, woken, nsfx, the
-- earliest due of the families not due or '', the families due (100 at
-- most) each with its due, the family of that earliest due or ''}, and
-- the daemon calls ftick on each (and on that family: a published due may
-- be early)
local function f_tick(K, A)
	start(K, A)
	if CLUSTER then
		local due = redis.call('ZRANGE', NS .. ':timers', '-inf', S(NOW),
				       'BYSCORE', 'LIMIT', 0, 100, 'WITHSCORES')
		local n = redis.call('ZRANGE', NS .. ':timers', '(' .. S(NOW),
				     '+inf', 'BYSCORE', 'LIMIT', 0, 1,
				     'WITHSCORES')
		return reply(0, #n > 0 and n[2] or '', due,
			     #n > 0 and n[1] or '')
	end
	while true do
		local due = redis.call('ZRANGE', NS .. ':timers', '-inf', S(NOW),
				       'BYSCORE', 'LIMIT', 0, 100)
		for _, f in ipairs(due) do ftick(f) end
		if #due < 100 then break end
	end
	-- the earliest family's due made exact (fhead), until it is
	local done = {}
	while true do
		local n = redis.call('ZRANGE', NS .. ':timers', 0, 0, 'WITHSCORES')
		if #n == 0 then return reply(0, '') end
		if done[n[1]] then return reply(0, n[2]) end
		done[n[1]] = true
		fhead(n[1])
		fdue_publish(n[1])
	end
end

-- ftick(family, the due the namespace's index has for it): its due
-- timers, in its slot; {0, woken, nsfx, its earliest due or '', its
-- outbox's stale entries (xentry)}, the due published with a new version
-- unless the index has it
local function f_ftick(K, A)
	start(K, A)
	local due, stale = ftick(A[3], A[4])
	return reply(0, due, stale)
end

-- fsweep(family): the repair of the namespace's keys from F's own (the
-- Cluster's second calls may have been cut): F's names in {P}:queues and
-- its earliest due in {P}:timers. {0, woken, nsfx, due or '', queues}
local function f_fsweep(K, A)
	start(K, A)
	local f = A[3]
	local qs = redis.call('ZRANGE', ftag(f) .. ':queues', 0, -1)
	local e = {'fix', f, S(#qs)}
	for _, q in ipairs(qs) do e[#e + 1] = q end
	nst(e)
	return reply(0, fdue_publish(f, true), qs)
end

-- families(cursor, count): a slice of {P}:families (SSCAN); {0, woken,
-- nsfx, next cursor ('0': the end), families}
local function f_families(K, A)
	start(K, A)
	local r = redis.call('SSCAN', NS .. ':families', A[3], 'COUNT', A[4])
	return reply(0, r[1], r[2])
end

-- ns(effect, ...): the namespace effects a call in a Cluster returned
-- (ns_apply), on {P}'s slot
local function f_ns(K, A)
	start(K, A)
	local i = 3
	while i <= #A do i = i + ns_apply(A, i) end
	return reply(0)
end

-- convert(): a store of layout 1 (every key under the one tag {P}) into
-- this layout, in one call, so that no daemon ever sees it half done;
-- nothing when it is converted already. {0, woken, 1 if it converted,
-- queues converted}. Ids go on from {P}:seq; a queue keeps its
-- incarnation, and its family's counter starts above every old one.
-- {P}:defaults becomes a string: a daemon of layout 1 then fails to open
-- (its first write, HSET {P}:defaults, is refused) instead of writing
-- keys nobody reads.
local TRAP = 'spoolfs: this store has layout 2 (per-family keys); ' ..
	'upgrade spoolfs'
local function f_convert(K, A)
	start(K, A)
	-- the mode is marked: '2' one primary, '2c' a Cluster (ids per
	-- family); daemons of the other mode are refused ({EXDEV, mark})
	local mark = CLUSTER and '2c' or '2'
	local have = redis.call('GET', NS .. ':layout')
	if have then
		if have ~= mark then return reply(EXDEV, have) end
		return reply(0, 0, 0)
	end
	-- what follows runs on one server only (a store of layout 1 never
	-- was in a Cluster), so it writes the namespace's keys itself
	local cluster = CLUSTER
	CLUSTER = false
	local old = redis.call('EXISTS', NS .. ':queues', NS .. ':defaults',
			       NS .. ':gen', NS .. ':timers') > 0
	local queues = redis.call('ZRANGE', NS .. ':queues', 0, -1)
	local gen = tonumber(redis.call('GET', NS .. ':gen') or '0')
	local due, dflt = {}, {}
	if redis.call('TYPE', NS .. ':timers').ok == 'zset' then
		local t = redis.call('ZRANGE', NS .. ':timers', 0, -1, 'WITHSCORES')
		for i = 1, #t, 2 do due[t[i]] = t[i + 1] end
	end
	if redis.call('TYPE', NS .. ':defaults').ok == 'hash' then
		dflt = redis.call('HGETALL', NS .. ':defaults')
	end
	redis.call('DEL', NS .. ':timers', NS .. ':gen', NS .. ':defaults')
	local fams = {}
	for _, q in ipairs(queues) do
		for _, t in ipairs({'s', 'r', 'd', 'l', 'k', 't', 'b', 'c', 'u',
				     'v', 'm'}) do
			local from = NS .. ':q:' .. q .. ':' .. t
			if redis.call('EXISTS', from) == 1 then
				redis.call('RENAME', from, qk(q, t))
			end
		end
		local f = ft(q)
		redis.call('ZADD', f .. ':queues', 0, q)
		redis.call('SADD', NS .. ':families', fam(q))
		if tonumber(redis.call('GET', f .. ':gen') or '0') < gen then
			redis.call('SET', f .. ':gen', S(gen))
		end
		if #dflt > 0 then
			redis.call('HSET', f .. ':defaults', unpack(dflt))
		end
		if due[q] then redis.call('ZADD', f .. ':timers', due[q], q) end
		if cluster and not fams[fam(q)] then
			-- ids per family from now on: above every old one
			local sq = redis.call('HGETALL', NS .. ':seq')
			if #sq > 0 then redis.call('HSET', f .. ':seq', unpack(sq)) end
		end
		fams[fam(q)] = true
	end
	for f, _ in pairs(fams) do fdue_publish(f) end
	redis.call('SET', NS .. ':defaults', TRAP)
	redis.call('SET', NS .. ':layout', mark)
	return reply(0, old and 1 or 0, #queues)
end

-- test seams: a body record by id (in whichever queue holds it; in queue
-- q only if q is given: the Cluster's mode, where the daemon asks each
-- queue on its family's slot)
local function find(id, q)
	if q and q ~= '' then
		local m = meta_get(q, id)
		if m then return q, m end
		return nil
	end
	for _, q in ipairs(redis.call('ZRANGE', NS .. ':queues', 0, -1)) do
		local m = meta_get(q, id)
		if m then return q, m end
	end
end

local function f_body_get(K, A)
	start(K, A)
	local _, m = find(A[3], A[4])
	if not m then return reply(ENOENT) end
	return reply(0, record(m))
end

local function f_body_put(K, A)
	start(K, A)
	local q, m = find(A[3], A[5])
	if not m then return reply(ENOENT) end
	m.rec = A[4]
	meta_put(q, m)
	return reply(0)
end

local function reg(name, fn, flags)
	redis.register_function{function_name = 'spool2_' .. name,
				callback = fn, flags = flags or {}}
end

local RO = {'no-writes', 'allow-stale'}
local OOM = {'allow-oom'}
reg('version', f_version, RO)
reg('qcreate', f_qcreate)
reg('convert', f_convert)
reg('qdelete', f_qdelete, OOM)
reg('qget', f_qget, RO)
reg('qset', f_qset, OOM)
reg('qnext', f_qnext, RO)
reg('meta_get', f_meta_get, RO)
reg('meta_set', f_meta_set)
reg('qcount', f_qcount, RO)
reg('room', f_room, RO)
reg('push', f_push)
reg('lease', f_lease, OOM)
reg('lease_id', f_lease_id, OOM)
reg('restore', f_restore, OOM)
reg('ack', f_ack, OOM)
reg('ack_batch', f_ack_batch, OOM)
reg('release', f_release, OOM)
reg('extend', f_extend, OOM)
reg('delete', f_delete, OOM)
reg('move', f_move, OOM)
reg('move_all', f_move_all, OOM)
reg('purge', f_purge, OOM)
reg('corrupt', f_corrupt, OOM)
reg('rename', f_rename)
reg('stat', f_stat, RO)
reg('record', f_record, RO)
reg('list', f_list, RO)
reg('stats', f_stats, RO)
reg('tick', f_tick, OOM)
reg('ftick', f_ftick, OOM)
reg('fsweep', f_fsweep, OOM)
reg('families', f_families, RO)
reg('ns', f_ns, OOM)
reg('xout', f_xout, OOM)
reg('xin', f_xin)
reg('xdone', f_xdone, OOM)
reg('xback', f_xback, OOM)
reg('body_get', f_body_get, RO)
reg('body_put', f_body_put, OOM)
