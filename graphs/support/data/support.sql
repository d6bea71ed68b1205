-- Sample data for the support example: a small software company's customers,
-- invoices, refunds, tickets and knowledge-base articles.
CREATE TABLE IF NOT EXISTS customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    plan TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active'
);
CREATE TABLE IF NOT EXISTS invoices (
    id TEXT PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    amount REAL NOT NULL,
    status TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    description TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    invoice_id TEXT NOT NULL REFERENCES invoices(id),
    amount REAL NOT NULL,
    reason TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_email TEXT,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    queue TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS password_resets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS kb_articles (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    keywords TEXT NOT NULL,
    body TEXT NOT NULL
);

INSERT OR IGNORE INTO customers (id, name, email, plan) VALUES
    (1, 'Alice Martin', 'alice@example.com', 'team'),
    (2, 'Bob Chen', 'bob@example.com', 'starter'),
    (3, 'Carla Diaz', 'carla@example.com', 'enterprise'),
    (4, 'Dev Patel', 'dev@example.com', 'starter');

INSERT OR IGNORE INTO invoices (id, customer_id, amount, status, issued_at, description) VALUES
    ('INV-1001', 1, 49.00, 'paid', '2026-09-01', 'Team plan, September'),
    ('INV-1002', 1, 480.00, 'paid', '2026-10-01', 'Team plan, annual upgrade'),
    ('INV-1003', 2, 19.00, 'paid', '2026-10-03', 'Starter plan, October'),
    ('INV-1004', 3, 2400.00, 'paid', '2026-10-15', 'Enterprise plan, Q4'),
    ('INV-1005', 4, 19.00, 'overdue', '2026-11-01', 'Starter plan, November');

INSERT OR IGNORE INTO kb_articles (id, title, keywords, body) VALUES
    ('KB-1', 'Sync stops with error 504', 'sync 504 timeout error', 'Error 504 during sync means the upload timed out. Update the desktop app to 4.2 or later and retry; large folders sync in batches.'),
    ('KB-2', 'App crashes on start', 'crash crashes start launch freeze', 'Delete the local cache (Settings > Storage > Clear cache) and restart. If it still crashes, reinstall the latest version.'),
    ('KB-3', 'Two-factor codes rejected', '2fa two-factor code authenticator otp', 'Codes are rejected when the phone clock drifts. Turn on automatic time on the phone and try a fresh code.'),
    ('KB-4', 'Slow dashboard', 'slow performance dashboard loading lag', 'Dashboards with more than 50 widgets load slowly. Split them or enable lazy loading in Settings > Display.');
