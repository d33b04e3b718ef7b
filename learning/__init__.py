"""What readers do with a lesson: their predictions, kept anonymously, and what authors learn from them."""
