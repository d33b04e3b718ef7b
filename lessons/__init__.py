"""Courses and their lessons: authored in the admin in Markdown, read on the site."""
