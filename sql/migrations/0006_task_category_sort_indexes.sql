-- Category filter under every sort. A category may hold 0.01% or 50% of a user's tasks, so neither
-- "read the sort's index and skip other categories" nor "read the category's tasks, then sort" is safe
-- for every category: on 1M tasks PostgreSQL's generic plan picked the latter for a large category,
-- 1 ms -> 60 ms. With one (user_id, category_id, sort key, id) index per sort (created_at has
-- tasks_user_category_created since 0003), a category page is an ordered index range whatever its size.
CREATE INDEX tasks_user_category_due ON tasks (user_id, category_id, (coalesce(due_date, 'infinity'::date)), id);
CREATE INDEX tasks_user_category_priority ON tasks (user_id, category_id, priority, id);
