<?php
// GET shows the form; POST answers with what was sent.
require __DIR__ . '/../lib/layout.php';

page_head('form');
if ($_SERVER['REQUEST_METHOD'] === 'POST') {
    $name = trim($_POST['name'] ?? '');
    $message = $_POST['message'] ?? '';
    printf("<p id=\"greeting\">Hello, %s!</p>\n", htmlspecialchars($name === '' ? 'stranger' : $name));
    printf("<p>Your message has %d bytes.</p>\n", strlen($message));
}
?>
<form method="post" action="/form.php">
  <label>Name <input name="name"></label>
  <label>Message <textarea name="message"></textarea></label>
  <button>Send</button>
</form>
<?php
page_foot();
