-- Asking the reader (待读者补充): a case awaiting the reader keeps the open question, the status
-- it returns to when the reader answers, and the local time (YYYY-MM-DD HH:MM) its deadline clock
-- stopped. Answers sent from the portal carry the form's idempotency key on their event, so that
-- a form sent twice records one answer. The service levels per kind live in the settings table
-- (case.service_levels.KIND, JSON) and need no table of their own.
ALTER TABLE cases ADD COLUMN question TEXT;
ALTER TABLE cases ADD COLUMN resume_status TEXT;
ALTER TABLE cases ADD COLUMN paused_local TEXT;
ALTER TABLE case_events ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX case_events_idempotency ON case_events(idempotency_key)
