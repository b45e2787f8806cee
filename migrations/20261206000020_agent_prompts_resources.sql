-- An agent's policy beyond tools (issue 15): the prompts it may list and get (downstream
-- names) and the resource URI patterns it may list, read and subscribe to (`*` stands for
-- any run of characters). Empty by default: an agent sees no prompt and no resource until
-- a person allows them (fail closed).
ALTER TABLE agents
    ADD COLUMN allowed_prompts   text[] NOT NULL DEFAULT '{}',
    ADD COLUMN allowed_resources text[] NOT NULL DEFAULT '{}';
