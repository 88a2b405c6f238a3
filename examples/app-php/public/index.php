<?php
require __DIR__ . '/../lib/layout.php';

page_head('phased + PHP');
?>
<p>This page is <code>index.php</code>, run by PHP through FastCGI; the
stylesheet is a static file that phased serves itself.</p>
<ul>
  <li><a href="/page.php/hello/world?lang=en">page.php/hello/world</a>: a page that reads PATH_INFO</li>
  <li><a href="/form.php">form.php</a>: a form that POSTs</li>
  <li><a href="/server-status">server-status</a>: phased's status page</li>
</ul>
<?php
page_foot();
