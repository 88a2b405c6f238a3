<?php
// Included by the pages in public/. It lives outside the document root,
// so no URL reaches it: phased serves only what is below public/.

function page_head(string $title): void
{
    header('Content-Type: text/html; charset=utf-8');
    $t = htmlspecialchars($title);
    echo "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>$t</title>\n";
    echo "<link rel=\"stylesheet\" href=\"/style.css\"></head>\n<body>\n<h1>$t</h1>\n";
}

function page_foot(): void
{
    printf("<footer>served by PHP %s (%s), process %d</footer>\n</body></html>\n",
        PHP_VERSION, PHP_SAPI, getmypid());
}
