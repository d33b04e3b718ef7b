/*
 * Entry point for a lesson's interactive blocks (loaded as <script type="module"> by the lesson page):
 * check questions and predictions become forms; without JavaScript both stay readable as the server wrote them.
 */
import { bootPredictions } from "./predictions.js";
import { bootQuizzes } from "./quizzes.js";

bootQuizzes();
bootPredictions();
