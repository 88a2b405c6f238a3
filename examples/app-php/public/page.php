<?php
// /page.php/a/b runs this script with PATH_INFO "/a/b".
require __DIR__ . '/../lib/layout.php';

$path = $_SERVER['PATH_INFO'] ?? '';
page_head('page');
printf("<p>PATH_INFO: <code id=\"path-info\">%s</code></p>\n", htmlspecialchars($path));
printf("<p>SCRIPT_NAME: <code id=\"script-name\">%s</code></p>\n", htmlspecialchars($_SERVER['SCRIPT_NAME']));
printf("<p>QUERY_STRING: <code id=\"query\">%s</code></p>\n", htmlspecialchars($_SERVER['QUERY_STRING'] ?? ''));
echo "<ol>\n";
foreach (array_filter(explode('/', $path), 'strlen') as $segment) {
    printf("<li>%s</li>\n", htmlspecialchars($segment));
}
echo "</ol>\n";
page_foot();
