# A Rack app served by puma (worker and event MPMs) or unicorn (prefork)
# under phased; see README.md.
require "digest"
require "json"

$stdout.sync = true # a line at a time into phased's error log

# Streamed is a body whose pieces go out as they are made.
class Streamed
  def initialize(n, ms)
    @n = n
    @ms = ms
  end

  def each
    @n.times do |i|
      yield format("piece %d at %.3f\n", i, Time.now.to_f)
      sleep(@ms / 1000.0)
    end
  end
end

HOARD = []

# One PostgreSQL pool per process, when DATABASE_URL is set: opened where
# the app loads, which is the process that serves (puma itself; unicorn's
# worker, after the fork, as unicorn.conf.rb keeps preload_app false), one
# connection per thread ({threads}, $PHASED_THREADS).
DB_POOL = if ENV["DATABASE_URL"].to_s != ""
  require "pg"
  size = (ENV["DB_POOL_SIZE"] || ENV["PHASED_THREADS"] || "1").to_i
  pool = Queue.new
  size.times { pool << PG.connect(ENV["DATABASE_URL"]) }
  puts "pid #{Process.pid}: database pool of #{size} open"
  at_exit do
    size.times { pool.pop.close }
    puts "pid #{Process.pid}: database pool closed"
  end
  pool
end

app = lambda do |env|
  req = Rack::Request.new(env)
  json = lambda do |obj, status = 200|
    body = JSON.generate(obj)
    [status, { "content-type" => "application/json", "content-length" => body.bytesize.to_s }, [body]]
  end
  case req.path_info
  when "/"
    json.call(app: "rack", pid: Process.pid, server: env["SERVER_SOFTWARE"].to_s)
  when "/health"
    [200, { "content-type" => "text/plain", "content-length" => "3" }, ["ok\n"]]
  when "/db"
    next json.call({ error: "no DATABASE_URL" }, 503) unless DB_POOL
    conn = DB_POOL.pop
    begin
      backend, now = conn.exec("SELECT pg_backend_pid(), now()::text").values.first
    ensure
      DB_POOL << conn
    end
    json.call(pid: Process.pid, backend: backend.to_i, now: now, pool: DB_POOL.size)
  when "/echo"
    body = req.body ? req.body.read : ""
    json.call(pid: Process.pid, method: req.request_method, length: body.bytesize, sha256: Digest::SHA256.hexdigest(body))
  when "/stream"
    [200, { "content-type" => "text/plain", "x-accel-buffering" => "no" },
     Streamed.new((req.params["n"] || 5).to_i, (req.params["ms"] || 200).to_i)]
  when "/slow"
    ms = (req.params["ms"] || 1000).to_i
    sleep(ms / 1000.0)
    puts "pid #{Process.pid}: slow request done after #{ms} ms"
    json.call(pid: Process.pid, slept_ms: ms)
  when "/alloc"
    HOARD << ("x" * ((req.params["mb"] || 100).to_i << 20))
    json.call(pid: Process.pid, hoard_mb: HOARD.sum(&:bytesize) >> 20)
  else
    [404, { "content-type" => "text/plain", "content-length" => "10" }, ["not found\n"]]
  end
end

run app
