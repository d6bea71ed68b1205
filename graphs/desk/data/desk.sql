-- The publishing desk's sample newsroom: sourced facts by topic, drafts, fact checks, and the
-- published articles. Seeding is idempotent (run on every open).
CREATE TABLE IF NOT EXISTS sources (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    fact TEXT NOT NULL,
    UNIQUE (topic, fact)
);
CREATE TABLE IF NOT EXISTS drafts (
    id INTEGER PRIMARY KEY,
    story TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    audience INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    saved_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS checks (
    id INTEGER PRIMARY KEY,
    draft_id INTEGER NOT NULL REFERENCES drafts (id),
    unsupported TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS articles (
    id INTEGER PRIMARY KEY,
    story TEXT NOT NULL,
    draft_id INTEGER NOT NULL REFERENCES drafts (id),
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    audience INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    published_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT OR IGNORE INTO sources (topic, fact) VALUES
    ('solar farm', 'The Riverside solar farm opened in March 2026.'),
    ('solar farm', 'It produces 40 MW at peak.'),
    ('solar farm', 'It covers 90 hectares of former farmland.'),
    ('library', 'The central library reopens on 4 May after a two-year renovation.'),
    ('library', 'The renovation added a makerspace and 120 study seats.'),
    ('bike lanes', 'The council approved 12 km of protected bike lanes on 2 June.'),
    ('bike lanes', 'Construction starts in September and ends next spring.');
